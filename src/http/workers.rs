//! A fixed set of threads for decoding and inference: as many as the CPUs hold once each
//! classification has its model threads (two CPUs and two model threads: one worker).
//!
//! More classifications at once than that only adds memory (each holds a decoded image and the
//! model's activations) without adding throughput, so requests queue here. A fixed set of threads
//! also keeps memory flat under sustained load: with tokio's blocking pool, new threads kept
//! appearing, each taking a fresh allocator arena, and RSS stepped up mid-run; each worker keeps
//! one arena's worth of freed activations, which is why there are no more workers than needed.
//! A panic inside a job (a decoder bug) becomes an error for that request; the thread survives.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// Why a job produced no result. Both are our faults (HTTP 500).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The job panicked.
    #[error("the classification panicked")]
    Panicked,
    /// No worker thread is left to run it.
    #[error("no classification thread is running")]
    Gone,
}

/// The queue and its threads; the threads end when the last handle is dropped.
#[derive(Debug)]
pub struct Workers {
    sender: mpsc::Sender<Job>,
}

impl Workers {
    /// Starts `threads` worker threads (at least one).
    pub fn new(threads: usize) -> std::io::Result<Workers> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..threads.max(1) {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("classify-{i}"))
                .spawn(move || loop {
                    let job = match receiver.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // every sender is gone
                    }
                })?;
        }
        Ok(Workers { sender })
    }

    /// Queues `job` without waiting for it (the model preload); a panic in it is contained.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) -> Result<(), WorkerError> {
        let wrapped: Job = Box::new(move || {
            let _ = catch_unwind(AssertUnwindSafe(job));
        });
        self.sender.send(wrapped).map_err(|_| WorkerError::Gone)
    }

    /// Runs `job` on a worker thread and waits for its result without blocking the caller's thread.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, WorkerError> {
        let (reply, result) = tokio::sync::oneshot::channel();
        self.submit(move || {
            let _ = reply.send(catch_unwind(AssertUnwindSafe(job)));
        })?;
        match result.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(WorkerError::Panicked),
            Err(_) => Err(WorkerError::Gone),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn results_come_back_and_panics_do_not_kill_workers() {
        let workers = Workers::new(1).unwrap();
        assert_eq!(workers.run(|| 2 + 2).await.unwrap(), 4);
        assert!(matches!(
            workers.run(|| panic!("boom")).await,
            Err(WorkerError::Panicked)
        ));
        assert_eq!(workers.run(|| "still here").await.unwrap(), "still here");
    }

    #[tokio::test]
    async fn submitted_jobs_run_in_order_before_later_ones() {
        let workers = Workers::new(1).unwrap();
        let (tx, rx) = mpsc::channel();
        workers
            .submit(move || tx.send("submitted").unwrap())
            .unwrap();
        workers.submit(|| panic!("contained")).unwrap();
        assert_eq!(
            workers.run(move || rx.try_recv()).await.unwrap(),
            Ok("submitted")
        );
    }
}
