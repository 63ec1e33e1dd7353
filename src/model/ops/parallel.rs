//! Sharing an operator's work between the threads of tract's current executor: the service
//! runs the model on a rayon pool that the classifying thread itself belongs to
//! (`model::executor`), so an operator splits its work into one part per thread and runs them on
//! that pool, the calling thread taking one.

use tract_linalg::multithread::{current_tract_executor, Executor};

/// How many parts to split work into: one per thread of tract's current executor.
pub fn threads() -> usize {
    match current_tract_executor() {
        Executor::SingleThread => 1,
        Executor::MultiThread(pool) => pool.current_num_threads().max(1),
        Executor::RayonGlobal => rayon::current_num_threads().max(1),
    }
}

/// Runs `work` on every job, on tract's current executor's threads.
pub fn for_each<J: Send>(jobs: Vec<J>, work: impl Fn(J) + Sync + Send) {
    use rayon::prelude::*;
    if jobs.len() <= 1 {
        jobs.into_iter().for_each(work);
        return;
    }
    match current_tract_executor() {
        Executor::MultiThread(pool) => pool.install(|| jobs.into_par_iter().for_each(work)),
        Executor::RayonGlobal => jobs.into_par_iter().for_each(work),
        Executor::SingleThread => jobs.into_iter().for_each(work),
    }
}

/// `0..len` cut into `parts` ranges whose bounds are multiples of `quantum` (the last ends at
/// `len`), empty ones dropped.
pub fn split(len: usize, parts: usize, quantum: usize) -> Vec<std::ops::Range<usize>> {
    let units = len.div_ceil(quantum);
    (0..parts)
        .map(|part| {
            let first = (units * part / parts * quantum).min(len);
            let last = (units * (part + 1) / parts * quantum).min(len);
            first..last
        })
        .filter(|r| !r.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_everything_once_on_whole_quanta() {
        for (len, parts, quantum) in [(10, 2, 1), (7, 2, 2), (56, 2, 4), (3, 4, 2), (1, 2, 6)] {
            let ranges = split(len, parts, quantum);
            assert_eq!(ranges.first().map(|r| r.start), Some(0));
            assert_eq!(ranges.last().map(|r| r.end), Some(len));
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
                assert_eq!(pair[1].start % quantum, 0);
            }
        }
    }
}
