//! Sustained load on `serve` over loopback: 10,000 requests at concurrency 8, good and bad
//! uploads mixed, every status as expected, and memory flat: RSS at the end within 10% of RSS
//! after warm-up. Then a burst of concurrent 4 MB uploads must stay within what the limits
//! promise (each in-flight request holds at most its body and one copy of its file part).
//!
//!     cargo test --release --test load -- --nocapture     # prints the figures

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;

const TOTAL: usize = 10_000;
const CONCURRENCY: usize = 8;
const WARM_UP: usize = 1_000;

/// A field of /proc/<pid>/status, in KiB.
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

struct Case {
    content_type: &'static str,
    body: Vec<u8>,
    path: &'static str,
    status: u16,
}

fn cases() -> Vec<Case> {
    let form = "multipart/form-data; boundary=loadtest";
    let multipart =
        |field: &str, data: &[u8]| common::multipart("loadtest", &[(field, "x.jpg", data)]);
    let cat = common::sample_bytes("serve_Cat.jpg");
    vec![
        Case {
            content_type: form,
            body: multipart("file", &cat),
            path: "/predict",
            status: 200,
        },
        Case {
            content_type: form,
            body: multipart("image", &cat),
            path: "/predict",
            status: 400,
        },
        Case {
            content_type: form,
            body: multipart("file", b"text, not an image"),
            path: "/predict",
            status: 415,
        },
        Case {
            content_type: form,
            body: multipart("file", &cat[..cat.len() / 2]),
            path: "/predict",
            status: 415,
        },
        Case {
            content_type: "application/json",
            body: b"{}".to_vec(),
            path: "/predict",
            status: 415,
        },
        Case {
            content_type: form,
            body: b"--loadtest\r\ngarbage".to_vec(),
            path: "/predict",
            status: 400,
        },
        Case {
            content_type: "image/jpeg",
            body: cat.clone(),
            path: "/predict?topk=1001",
            status: 400,
        },
        Case {
            content_type: "image/jpeg",
            body: vec![],
            path: "/nowhere",
            status: 404,
        },
        Case {
            content_type: "image/jpeg",
            body: vec![],
            path: "/health",
            status: 405,
        },
        Case {
            content_type: form,
            body: multipart("file", &[]),
            path: "/predict",
            status: 400,
        },
    ]
}

#[test]
fn ten_thousand_mixed_requests_keep_memory_flat() {
    let server = common::serve(&common::efficientnet(), &[("RUST_LOG", "warn")]);
    let pid = server.child.id();

    let cases = Arc::new(cases());
    let unexpected = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let run = |count: usize| {
        let start = Instant::now();
        let end = next.load(Ordering::SeqCst) + count;
        std::thread::scope(|scope| {
            for _ in 0..CONCURRENCY {
                let (cases, unexpected, next, base) = (&cases, &unexpected, &next, &server.base);
                scope.spawn(move || {
                    let client = Client::builder()
                        .timeout(Duration::from_secs(60))
                        .build()
                        .unwrap();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= end {
                            next.fetch_sub(1, Ordering::SeqCst);
                            break;
                        }
                        let case = &cases[i % cases.len()];
                        let response = client
                            .post(format!("{base}{}", case.path))
                            .header("content-type", case.content_type)
                            .body(case.body.clone())
                            .send();
                        match response {
                            Ok(r) if r.status().as_u16() == case.status => {}
                            Ok(r) => {
                                eprintln!("request {i}: {} expected {}", r.status(), case.status);
                                unexpected.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => {
                                eprintln!("request {i}: {e}");
                                unexpected.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                });
            }
        });
        start.elapsed()
    };

    let warm_time = run(WARM_UP);
    let warm_rss = proc_kib(pid, "VmRSS:");
    let mut main_time = Duration::ZERO;
    for _ in 0..(TOTAL - WARM_UP) / 1000 {
        main_time += run(1000);
        eprintln!("rss {}", proc_kib(pid, "VmRSS:"));
    }
    let end_rss = proc_kib(pid, "VmRSS:");
    let rate = (TOTAL - WARM_UP) as f64 / main_time.as_secs_f64();
    eprintln!(
        "load: {TOTAL} requests at concurrency {CONCURRENCY}: warm-up {:.1} s, then {:.1} s ({rate:.0} req/s); \
         RSS after warm-up {} KiB, at the end {} KiB ({:+.1}%); unexpected statuses {}",
        warm_time.as_secs_f64(),
        main_time.as_secs_f64(),
        warm_rss,
        end_rss,
        (end_rss as f64 / warm_rss as f64 - 1.0) * 100.0,
        unexpected.load(Ordering::SeqCst)
    );
    assert_eq!(unexpected.load(Ordering::SeqCst), 0);
    assert!(
        end_rss as f64 <= warm_rss as f64 * 1.10,
        "RSS grew from {warm_rss} to {end_rss} KiB"
    );

    // A burst of concurrent 4 MB uploads: memory grows by at most body + one part copy each.
    let before = proc_kib(pid, "VmHWM:");
    let big = common::multipart("loadtest", &[("file", "big.jpg", &vec![0x5a; 4 << 20])]);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let (big, base) = (&big, &server.base);
            scope.spawn(move || {
                let r = Client::new()
                    .post(format!("{base}/predict"))
                    .header("content-type", "multipart/form-data; boundary=loadtest")
                    .body(big.clone())
                    .send()
                    .unwrap();
                assert_eq!(r.status().as_u16(), 415);
            });
        }
    });
    let after = proc_kib(pid, "VmHWM:");
    eprintln!("4 concurrent 4 MiB uploads: peak RSS {before} → {after} KiB");
    assert!(
        after <= before + 4 * 2 * 4 * 1024 + 8 * 1024,
        "peak RSS grew from {before} to {after} KiB"
    );
}
