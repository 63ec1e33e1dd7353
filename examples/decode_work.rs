//! How long the worst uploads of every format take to decode, against the work estimated from
//! their headers: the measurements behind `preprocess::budget::work` and the table of
//! docs/memory.md's "Time" section.
//!
//!     cargo run --release --example decode_work [-- FILTER [FILE...]]
//!
//! For each upload of `tests/synth/worst.rs` (and the scan bombs, the samples and any FILE given),
//! prints the estimate, the
//! measured time of `preprocess` with no allowance limit (median of 3), their ratio, and what the
//! default allowance decides. An estimate should err long (ratio ≥ 1) without refusing
//! ordinary images. With `DECODE_WORK_SAVE=DIR`, each upload is also written to DIR, to send to
//! a server.

#[path = "../tests/synth/mod.rs"]
mod synth;

use std::time::Instant;

use densenet_lambda::model::kernels::cpu;
use densenet_lambda::preprocess::{decode_cost, preprocess_within, Allowance, DecodeOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let filter = args.next().unwrap_or_default();
    println!("cpu {}", cpu());
    let options = DecodeOptions::for_function_memory(512);
    let mut cases: Vec<(String, Vec<u8>)> = synth::worst::cases()
        .into_iter()
        .map(|c| (c.name, c.bytes))
        .collect();
    for (w, extra) in [(8192u16, 1000usize), (8192, 80), (4096, 300), (16384, 20)] {
        cases.push((
            format!("JPEG scan bomb {w}x{w}, {extra} extra scans"),
            synth::big::jpeg_scan_bomb(w, w, extra),
        ));
        cases.push((
            format!("JPEG refinement bomb {w}x{w}, {extra} extra scans"),
            synth::big::jpeg_refine_bomb(w, w, extra),
        ));
    }
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/samples");
    for name in ["kitten.jpg", "serve_Cat.jpg", "skimage_chelsea.png"] {
        if let Ok(bytes) = std::fs::read(shared.join(name)) {
            cases.push((name.to_string(), bytes));
        }
    }
    for path in args {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        cases.push((path, bytes));
    }
    println!(
        "{:<48} {:>9} {:>10} {:>10} {:>6}  default allowance ({} ms)",
        "upload",
        "bytes",
        "estimate",
        "measured",
        "ratio",
        options.max_work_ns / 1_000_000
    );
    let save = std::env::var_os("DECODE_WORK_SAVE").map(std::path::PathBuf::from);
    for (name, bytes) in cases.iter().filter(|(n, _)| n.contains(&filter)) {
        if let Some(dir) = &save {
            let file: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            std::fs::write(dir.join(file), bytes).expect("DECODE_WORK_SAVE is writable");
        }
        let cost = match decode_cost(bytes, options) {
            Ok(cost) => cost,
            Err(e) => {
                println!("{name:<48} {:>9} refused from the header: {e}", bytes.len());
                continue;
            }
        };
        let verdict = if cost.bytes > options.max_alloc_bytes {
            "413 (memory)"
        } else if cost.work > options.max_work_ns {
            "413 (work)"
        } else {
            "accepted"
        };
        let mut times = vec![];
        if cost.bytes <= options.max_alloc_bytes {
            for _ in 0..3 {
                let start = Instant::now();
                let result = preprocess_within(bytes, options, &Allowance::new(u64::MAX));
                times.push(start.elapsed().as_secs_f64());
                if let Err(e) = result {
                    println!("{name}: {e}");
                    break;
                }
            }
        }
        times.sort_by(f64::total_cmp);
        let measured = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
        let estimate = cost.work as f64 / 1e9;
        println!(
            "{name:<48} {:>9} {:>8.3} s {:>8.3} s {:>6.2}  {verdict}",
            bytes.len(),
            estimate,
            measured,
            estimate / measured
        );
    }
}
