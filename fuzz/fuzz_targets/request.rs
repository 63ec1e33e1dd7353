//! Fuzzes the request path up to the model input: Content-Type + body → `upload::BodyKind` and
//! `upload::images` (multipart parsing with multer, or a raw image body) →
//! `preprocess::preprocess` (format
//! sniffing, decoding under limits, RGB conversion, PIL-exact resize, crop, normalise).
//!
//! Input layout: byte 0 chooses the Content-Type (see `CONTENT_TYPES`, taken modulo their
//! number) and, with `(byte 0 / 5) % 2`, whether large JPEGs may be DCT-scaled (0: yes, the
//! production default; 1: no); bytes 1.. are the request body. Every image the upload step
//! extracts is preprocessed; when the upload step did not hand back the body itself as the image,
//! the body is also preprocessed directly, so image decoders are fuzzed even when the multipart
//! wrapper is broken. Errors are expected and ignored; a panic, an abort or a sanitizer report is a bug.
//!
//! `FUZZ_VERBOSE=1` prints what each input did (use with `-runs=0` to check a seed corpus).

#![no_main]

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use densenet_lambda::preprocess::{self, DecodeOptions, TENSOR_LEN};
use densenet_lambda::http::upload::{self, UploadLimits};
use libfuzzer_sys::fuzz_target;

/// Content-Types that byte 0 chooses from (index = byte 0 % len). The multipart boundary is
/// fixed ("X"); make_seeds.py builds its multipart seeds with it.
const CONTENT_TYPES: [Option<&str>; 5] = [
    Some("multipart/form-data; boundary=X"),
    Some("image/jpeg"),
    Some("application/octet-stream"),
    Some("application/json"),
    None,
];

/// Small decode limits: a few bytes may legitimately claim a 16384² image, which would make the
/// fuzzer spend its time (and memory) on allocation rather than on finding bugs. DCT scaling
/// applies to JPEGs whose shorter side is at least 1020 px, so it stays reachable.
const fn decode_options(jpeg_dct_scaling: bool) -> DecodeOptions {
    DecodeOptions {
        max_dimension: 2048,
        max_alloc_bytes: 64 << 20,
        jpeg_dct_scaling,
        // 100 ms of estimated decoding per input, as the memory limit is small: each input's
        // work stays bounded, and the refusal path is exercised.
        max_work_ns: 100_000_000,
    }
}
const MAX_DIMENSION: u32 = decode_options(true).max_dimension;

fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("FUZZ_VERBOSE").is_some_and(|v| v != "0"))
}

/// Drives a future that never waits on I/O to completion (the body is one in-memory chunk).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    // Nothing here waits on anything external; a future still pending after this many polls
    // would hang a real request forever, which is a bug worth reporting.
    for _ in 0..10_000 {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("upload::images did not complete on an in-memory body");
}

fn check_image(part: Option<usize>, bytes: &[u8], options: DecodeOptions) {
    let result = preprocess::preprocess(bytes, options);
    if let Ok(p) = &result {
        // Invariants the model relies on.
        assert_eq!(p.tensor.len(), TENSOR_LEN, "tensor length");
        assert!(
            p.source_size.0 >= 1 && p.source_size.1 >= 1,
            "zero-sized image accepted"
        );
        assert!(
            p.source_size.0 <= MAX_DIMENSION && p.source_size.1 <= MAX_DIMENSION,
            "image beyond the decode limits accepted: {:?}",
            p.source_size
        );
        assert!(
            p.tensor.iter().all(|v| v.is_finite()),
            "non-finite tensor value"
        );
    }
    if verbose() {
        let what = part.map_or_else(|| "raw body".to_owned(), |i| format!("part {i}"));
        match &result {
            Ok(p) => eprintln!("  {what}: {} bytes -> ok {:?}", bytes.len(), p.source_size),
            Err(e) => eprintln!("  {what}: {} bytes -> {e}", bytes.len()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
    let options = decode_options((usize::from(selector) / CONTENT_TYPES.len()) % 2 == 0);
    let body = Bytes::copy_from_slice(body);

    let uploaded = upload::BodyKind::from_content_type(content_type).and_then(|kind| {
        let chunks = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(body.clone())]);
        block_on(upload::images(kind, chunks, UploadLimits::default()))
    });
    if verbose() {
        match &uploaded {
            Ok(files) => eprintln!(
                "{content_type:?} dct={}: {} part(s) {:?}",
                options.jpeg_dct_scaling,
                files.len(),
                files.iter().map(Bytes::len).collect::<Vec<_>>()
            ),
            Err(e) => eprintln!(
                "{content_type:?} dct={}: upload error: {e}",
                options.jpeg_dct_scaling
            ),
        }
    }

    let mut body_was_image = false;
    if let Ok(files) = &uploaded {
        assert!(!files.is_empty(), "images() returned no image");
        for (i, file) in files.iter().enumerate() {
            assert!(!file.is_empty(), "images() returned an empty image");
            body_was_image |= file.as_ref() == body.as_ref();
            check_image(Some(i), file, options);
        }
    }
    if !body_was_image {
        check_image(None, &body, options);
    }
});
