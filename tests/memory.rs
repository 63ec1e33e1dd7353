//! Memory stays bounded by the function's size, whatever the upload: `serve` runs inside a
//! 512 MB memory cgroup (swap limited too), as a 512 MB Lambda function does, with
//! `AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512` and DenseNet-121, and receives the worst uploads that
//! fit the 6 MiB body limit, for every format and colour mode, as large in pixels as the
//! dimension limit allows (and, for the formats decoded whole, as large as the budget allows).
//! Each gets a 200 or a JSON 4xx; the server survives every one with no OOM kill and the
//! group's peak usage under the limit; kitten.jpg is still answered at the end.
//!
//! Needs root and a writable cgroup v1 memory controller; elsewhere it prints why and passes.
//! `-- --nocapture` prints each case's status and time and the memory figures.

mod cgroup;
mod common;
mod synth;

use std::time::{Duration, Instant};
use synth::worst::cases;

use densenet_lambda::preprocess::{decode_cost, DecodeOptions};

const LIMIT: u64 = 512 * 1024 * 1024;
const FUNCTION_MEMORY_MB: &str = "512";
const BOUNDARY: &str = "memoryTestBoundary7";

/// VmHWM (peak resident set) of a process, in bytes.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

const MB: f64 = 1e6;

#[test]
fn serve_survives_the_worst_uploads_in_512_mb() {
    let group = match cgroup::MemoryCgroup::create(
        &format!("densenet-lambda-memory-test-{}", std::process::id()),
        LIMIT,
    ) {
        Ok(group) => group,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let started = Instant::now();
    let cases = cases();
    let generated = started.elapsed();
    let options = DecodeOptions::for_function_memory(512);
    let oversized: Vec<String> = cases
        .iter()
        .filter(|c| c.bytes.len() > 6 * 1024 * 1024 - 1024)
        .map(|c| format!("{}: {} bytes", c.name, c.bytes.len()))
        .collect();
    assert!(
        oversized.is_empty(),
        "beyond the 6 MiB body limit: {oversized:?}"
    );
    for c in &cases {
        // The status each case must get is the one the budget gives (checks the cases
        // themselves: the near-budget ones must be accepted, the largest refused).
        let within =
            decode_cost(&c.bytes, options).map(|cost| cost.bytes <= options.max_alloc_bytes);
        match c.expect {
            Some(200) => assert!(matches!(within, Ok(true)), "{}: {within:?}", c.name),
            Some(413) => assert!(
                matches!(
                    within,
                    Ok(false) | Err(densenet_lambda::preprocess::ImageError::TooLarge { .. })
                ),
                "{}: {within:?}",
                c.name
            ),
            _ => {}
        }
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = group
        .command(env!("CARGO_BIN_EXE_densenet-lambda"))
        .args(["serve", "--port", &port.to_string()])
        .env("MODEL_PATH", common::densenet())
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", FUNCTION_MEMORY_MB)
        .env_remove("MAX_DECODE_BYTES")
        // Memory is what this test bounds: the decode-time allowance (tests/decode_work.rs)
        // would refuse some of the heaviest decodes before they allocate anything.
        .env("MAX_DECODE_MS", "1000000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(&base).send().is_err() {
        assert!(child.try_wait().unwrap().is_none(), "serve exited at start");
        assert!(Instant::now() < deadline, "serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let post = |body: Vec<u8>| {
        client
            .post(format!("{}/predict", base))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body)
            .send()
    };
    let kitten = common::sample_bytes("kitten.jpg");
    let first = post(common::multipart(
        BOUNDARY,
        &[("file", "kitten.jpg", &kitten)],
    ))
    .unwrap();
    assert_eq!(first.status(), 200);
    let after_load = group.usage();

    let mut failures = Vec::new();
    for c in &cases {
        let start = Instant::now();
        let body = common::multipart(BOUNDARY, &[("file", "upload", &c.bytes)]);
        let reply = post(body);
        let elapsed = start.elapsed();
        let alive = child.try_wait().unwrap().is_none();
        let (status, text) = match reply {
            Ok(r) => {
                let status = r.status().as_u16();
                let json = r
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v == "application/json");
                (
                    status,
                    if json {
                        r.text().unwrap_or_default()
                    } else {
                        String::new()
                    },
                )
            }
            Err(e) => (0, e.to_string()),
        };
        eprintln!(
            "{:<44} {:>8} B  {status}  {:>6.2} s  group peak {:>5.0} MB  {}",
            c.name,
            c.bytes.len(),
            elapsed.as_secs_f64(),
            group.max_usage() as f64 / MB,
            text.chars().take(110).collect::<String>()
        );
        if !alive {
            failures.push(format!(
                "{}: serve died (OOM kills: {:?})",
                c.name,
                group.oom_kills()
            ));
            break;
        }
        let json_ok = serde_json::from_str::<serde_json::Value>(&text).is_ok();
        let status_ok = match c.expect {
            Some(s) => status == s,
            None => status == 200 || status == 413,
        };
        if !status_ok || !json_ok {
            failures.push(format!("{}: {status} {text}", c.name));
        }
    }

    let reply = post(common::multipart(
        BOUNDARY,
        &[("file", "kitten.jpg", &kitten)],
    ));
    let kitten_ok = reply.map(|r| r.status().as_u16() == 200).unwrap_or(false);
    let hwm = vm_hwm(pid);
    let alive = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    eprintln!(
        "images generated in {:.1} s; group: limit {:.0} MB, after the model load {:.0} MB, \
         peak {:.0} MB (page cache included), limit hit {} times, OOM kills {:?}; \
         serve VmHWM {:.0} MB; {:.0} s in all",
        generated.as_secs_f64(),
        group.limit() as f64 / MB,
        after_load as f64 / MB,
        group.max_usage() as f64 / MB,
        group.failcnt(),
        group.oom_kills(),
        hwm.unwrap_or(0) as f64 / MB,
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(alive, "serve is not running after the uploads");
    assert!(kitten_ok, "kitten.jpg was not answered after the uploads");
    assert_eq!(group.oom_kills().unwrap_or(0), 0, "the OOM killer ran");
    assert!(group.max_usage() < LIMIT);
}
