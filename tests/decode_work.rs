//! No upload can tie the function up. An image whose decode would take too long (a progressive
//! JPEG of a thousand tiny scans) is refused from its header and stream, before decoding, with a
//! 413 that says why; a request's images share one allowance; every sample stays accepted. And
//! work the server gave up on stops: after a request that timed out, or whose client went away,
//! the next one is answered at its usual speed, under `serve` and under the Lambda runtime.

mod common;
mod synth;

use std::io::Write;
use std::time::{Duration, Instant};

use densenet_lambda::preprocess::{
    decode_cost, preprocess, preprocess_within, Allowance, DecodeOptions, ImageError,
};
use synth::big;

/// The scan bomb of the issue that brought the allowance: 8192×8192, 1,000 extra scans. It took
/// 5.9 s to decode on a Zen 4.
fn scan_bomb() -> Vec<u8> {
    big::jpeg_scan_bomb(8192, 8192, 1000)
}

#[test]
fn the_scans_of_a_stream_are_counted() {
    let options = DecodeOptions::default();
    let small = decode_cost(&big::jpeg_scan_bomb(512, 512, 10), options).unwrap();
    let bomb = decode_cost(&scan_bomb(), options).unwrap();
    // 1,001 scans of 1M blocks each, ~7 ns a block: ~7 s.
    assert!(bomb.work > 5_000_000_000, "{}", bomb.work);
    assert!(small.work < 10_000_000, "{}", small.work);
    // Refinement scans walk the 63 coefficients of every block: 66 s measured on a Zen 3.
    let refine = decode_cost(&big::jpeg_refine_bomb(8192, 8192, 1000), options).unwrap();
    assert!(refine.work > 50_000_000_000, "{}", refine.work);
    // A real progressive photo: a few scans.
    let photo = big::jpeg_progressive(1600, 1200);
    let cost = decode_cost(&photo, options).unwrap();
    assert!(cost.work < options.max_work_ns / 4, "{}", cost.work);
}

#[test]
fn a_scan_bomb_is_refused_before_decoding() {
    let bytes = scan_bomb();
    assert!(bytes.len() < 400_000, "{} bytes", bytes.len());
    let start = Instant::now();
    let error = preprocess(&bytes, DecodeOptions::default()).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, ImageError::TooLarge { .. }), "{message}");
    assert!(message.contains("would take about"), "{message}");
    // Refused from the stream, not after decoding it (which takes seconds).
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_refinement_bomb_is_refused_before_decoding() {
    // 44 KB that took 4.6 s to decode on a Zen 3.
    let bytes = big::jpeg_refine_bomb(4096, 4096, 300);
    let start = Instant::now();
    let error = preprocess(&bytes, DecodeOptions::default()).unwrap_err();
    assert!(matches!(error, ImageError::TooLarge { .. }), "{error}");
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn every_sample_fits_in_the_allowance() {
    for name in [
        "kitten.jpg",
        "serve_Cat.jpg",
        "tutorial_cat_pic.jpeg",
        "imagenet_n04254680_soccer_ball.JPEG",
        "skimage_chelsea.png",
    ] {
        let cost = decode_cost(&common::sample_bytes(name), DecodeOptions::default()).unwrap();
        assert!(
            cost.work < DecodeOptions::default().max_work_ns / 10,
            "{name}: {} ns",
            cost.work
        );
        preprocess(&common::sample_bytes(name), DecodeOptions::default()).unwrap();
    }
}

#[test]
fn a_request_s_images_share_one_allowance() {
    let bytes = big::jpeg_scan_bomb(4096, 4096, 60);
    let options = DecodeOptions::default();
    let each = decode_cost(&bytes, options).unwrap().work;
    // Room for two of them, not three.
    let allowance = Allowance::new(each * 5 / 2);
    preprocess_within(&bytes, options, &allowance).unwrap();
    preprocess_within(&bytes, options, &allowance).unwrap();
    let error = preprocess_within(&bytes, options, &allowance).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("other images have used"), "{message}");
}

#[test]
fn a_cancelled_decode_stops_within_a_few_scans() {
    // The bomb under an allowance that lets it through: seconds of work, cancelled at 200 ms.
    let bytes = scan_bomb();
    let allowance = Allowance::new(u64::MAX);
    let cancel = allowance.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        cancel.cancel();
    });
    let start = Instant::now();
    let result = preprocess_within(&bytes, DecodeOptions::default(), &allowance);
    let took = start.elapsed();
    canceller.join().unwrap();
    assert!(matches!(result, Err(ImageError::Abandoned)), "{result:?}");
    assert!(took < Duration::from_millis(1500), "stopped after {took:?}");
}

/// A multipart body with one `file` part.
fn form(bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "decodeWorkBoundary";
    (
        format!("multipart/form-data; boundary={boundary}"),
        common::multipart(boundary, &[("file", "image.jpg", bytes)]),
    )
}

/// POSTs `bytes` to `url`/predict; the status and how long the answer took.
fn post(url: &str, bytes: &[u8]) -> (u16, Duration) {
    let (content_type, body) = form(bytes);
    let start = Instant::now();
    // Generous: the first request also loads the model, on a machine that may be busy.
    let response = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
        .post(format!("{url}/predict"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .unwrap();
    let status = response.status().as_u16();
    let _ = response.text();
    (status, start.elapsed())
}

/// What kitten.jpg takes when nothing else is running, twice (the first loads the model).
fn usual(url: &str) -> Duration {
    let kitten = common::sample_bytes("kitten.jpg");
    assert_eq!(post(url, &kitten).0, 200);
    let (status, took) = post(url, &kitten);
    assert_eq!(status, 200);
    took
}

/// The kitten right after `given_up` ran: answered, and not slower than a second over its usual
/// time (without the cancellation, it waited for the seconds of the bomb's decode).
fn next_request_is_not_held_up(url: &str, usual: Duration, given_up: impl FnOnce()) {
    given_up();
    let (status, took) = post(url, &common::sample_bytes("kitten.jpg"));
    assert_eq!(status, 200);
    assert!(
        took < usual + Duration::from_secs(1),
        "the kitten took {took:?} after the abandoned request (usually {usual:?})"
    );
}

/// `serve` with a one-second timeout and an allowance that lets the bomb through.
fn serve_letting_bombs_through() -> common::Serve {
    common::serve(
        &common::efficientnet(),
        &[("REQUEST_TIMEOUT_SECS", "1"), ("MAX_DECODE_MS", "100000")],
    )
}

#[test]
fn serve_stops_a_request_that_timed_out() {
    let server = serve_letting_bombs_through();
    let usual = usual(&server.base);
    next_request_is_not_held_up(&server.base, usual, || {
        let (status, took) = post(&server.base, &scan_bomb());
        assert_eq!(status, 503);
        assert!(took < Duration::from_secs(3), "{took:?}");
    });
}

#[test]
fn serve_stops_a_request_whose_client_went_away() {
    let server = serve_letting_bombs_through();
    let usual = usual(&server.base);
    next_request_is_not_held_up(&server.base, usual, || {
        let (content_type, body) = form(&scan_bomb());
        let address = server.base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(
            stream,
            "POST /predict HTTP/1.1\r\nHost: {address}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        stream.write_all(&body).unwrap();
        // Long enough for the decode to start, then the client is gone.
        std::thread::sleep(Duration::from_millis(300));
        drop(stream);
        std::thread::sleep(Duration::from_millis(100));
    });
}

#[test]
fn the_lambda_runtime_stops_an_invocation_that_timed_out() {
    let model = common::efficientnet();
    let emulator = common::emulator::lambda_emulator(&[
        ("MODEL_PATH", model.to_str().unwrap()),
        ("REQUEST_TIMEOUT_SECS", "1"),
        ("MAX_DECODE_MS", "100000"),
    ]);
    let url = emulator.function_url();
    let usual = usual(&url);
    next_request_is_not_held_up(&url, usual, || {
        let (status, _) = post(&url, &scan_bomb());
        assert_eq!(status, 503);
    });
}
