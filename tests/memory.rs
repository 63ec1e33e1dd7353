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

use densenet_lambda::preprocess::{decode_cost, DecodeOptions};
use synth::big;

const LIMIT: u64 = 512 * 1024 * 1024;
const FUNCTION_MEMORY_MB: &str = "512";
const BOUNDARY: &str = "memoryTestBoundary7";

/// One upload: its name, bytes and the status it must get (`None`: 200 or 413, whichever the
/// budget decides).
struct Case {
    name: String,
    bytes: Vec<u8>,
    expect: Option<u16>,
}

fn case(name: impl Into<String>, bytes: Vec<u8>, expect: Option<u16>) -> Case {
    Case {
        name: name.into(),
        bytes,
        expect,
    }
}

/// The uploads. Max: 16384 px a side (WebP: 16383, its format's limit).
fn cases() -> Vec<Case> {
    use png::{BitDepth as D, ColorType as C};
    const MAX: u32 = 16_384;
    let mut cases = Vec::new();
    // Streamed: accepted at any size.
    for (name, color, depth) in [
        ("grey 8-bit", C::Grayscale, D::Eight),
        ("grey 16-bit", C::Grayscale, D::Sixteen),
        ("grey+alpha 8-bit", C::GrayscaleAlpha, D::Eight),
        ("grey+alpha 16-bit", C::GrayscaleAlpha, D::Sixteen),
        ("RGB 8-bit", C::Rgb, D::Eight),
        ("RGB 16-bit", C::Rgb, D::Sixteen),
        ("RGBA 8-bit", C::Rgba, D::Eight),
        ("RGBA 16-bit", C::Rgba, D::Sixteen),
        ("palette + tRNS", C::Indexed, D::Eight),
    ] {
        cases.push(case(
            format!("PNG {name} {MAX}x{MAX}"),
            big::png(MAX, MAX, color, depth),
            Some(200),
        ));
    }
    cases.push(case(
        format!("GIF {MAX}x{MAX}"),
        big::gif(MAX as u16, MAX as u16, false),
        Some(200),
    ));
    cases.push(case(
        format!("GIF interlaced {MAX}x{MAX}"),
        big::gif(MAX as u16, MAX as u16, true),
        Some(200),
    ));
    // Decoded whole: refused from the header at the largest sizes…
    cases.push(case(
        format!("PNG interlaced grey {MAX}x{MAX}"),
        big::png_interlaced_grey(MAX, MAX),
        Some(413),
    ));
    cases.push(case(
        format!("BMP RLE8 {MAX}x{MAX}"),
        big::bmp_rle8(MAX, MAX),
        Some(413),
    ));
    cases.push(case(
        format!("TIFF RGB 8-bit deflate {MAX}x{MAX}"),
        big::tiff(MAX, MAX, false),
        Some(413),
    ));
    cases.push(case(
        format!("TIFF RGBA 16-bit deflate {MAX}x{MAX}"),
        big::tiff(MAX, MAX, true),
        Some(413),
    ));
    cases.push(case(
        format!("JPEG progressive claiming {MAX}x{MAX}"),
        big::jpeg_claiming(MAX as u16, MAX as u16, true),
        Some(413),
    ));
    // A baseline JPEG streams through libjpeg a few MCU rows at a time (DCT-scaled to 1/8 here),
    // so even the largest one fits: decoded, not refused.
    cases.push(case(
        format!("JPEG baseline claiming {MAX}x{MAX}"),
        big::jpeg_claiming(MAX as u16, MAX as u16, false),
        Some(200),
    ));
    cases.push(case(
        "WebP lossless claiming 16383x16383",
        big::webp_claiming(16_383, 16_383),
        Some(413),
    ));
    // …and accepted just under the budget (256 MiB for 512 MB): the heaviest whole decodes.
    cases.push(case(
        "PNG interlaced grey 13000x13000 (169 MB)",
        big::png_interlaced_grey(13_000, 13_000),
        Some(200),
    ));
    cases.push(case(
        "BMP RLE8 9000x9000 (243 MB RGB)",
        big::bmp_rle8(9_000, 9_000),
        Some(200),
    ));
    cases.push(case(
        "TIFF RGB 8-bit deflate 6000x6000",
        big::tiff(6_000, 6_000, false),
        Some(200),
    ));
    cases.push(case(
        "TIFF RGBA 16-bit deflate 4000x3500",
        big::tiff(4_000, 3_500, true),
        Some(200),
    ));
    cases.push(case(
        "JPEG baseline 5000x5000",
        big::jpeg_baseline(5_000, 5_000),
        Some(200),
    ));
    cases.push(case(
        "JPEG progressive 4:2:0 5000x5000",
        big::jpeg_progressive(5_000, 5_000),
        Some(200),
    ));
    cases.push(case(
        "WebP lossless RGB 4500x4500",
        big::webp(4_500, 4_500, false),
        Some(200),
    ));
    cases.push(case(
        "WebP lossless RGBA 5000x5000",
        big::webp(5_000, 5_000, true),
        Some(200),
    ));
    cases
}

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
