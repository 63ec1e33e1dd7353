//! The decode budget counts what decodes really allocate: for images of every format and mode
//! that are decoded whole (or, JPEG, through libjpeg), the peak of `preprocess` (the Rust heap's,
//! measured with a counting allocator, or malloc's sampled at every row, which sees libjpeg's own
//! allocations) is at most the cost `decode_cost` computes from the header, the figure checked against
//! `MAX_DECODE_BYTES`. Images that stream (non-interlaced PNG, GIF) peak at a few MB whatever
//! their size. `-- --nocapture` prints the table docs/memory.md quotes.

mod synth;

use std::sync::Mutex;

use densenet_lambda::preprocess::{decode_cost, open, DecodeOptions, HorizontalPass, RowSink};
use image::ImageFormat;
use peak_alloc::PeakAlloc;

#[global_allocator]
static PEAK: PeakAlloc = PeakAlloc;

/// The peak is process-wide: one test at a time, test images made inside the lock too (another
/// test allocating its images would count in this one's peak).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

const MB: f64 = 1e6;

/// Bytes malloc has handed out and not taken back (glibc's `mallinfo2`: arena plus mmapped
/// blocks), which counts what a C decoder (libjpeg) allocates as well as Rust's heap.
fn malloc_in_use() -> u64 {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let info = unsafe { libc::mallinfo2() };
    (info.uordblks + info.hblkhd) as u64
}

/// The resize's row sink, sampling `malloc_in_use` at every row: libjpeg's buffers (the
/// coefficients of a progressive image, the sample rows) are alive while rows come out.
struct Sampling<'a> {
    pass: &'a mut HorizontalPass,
    peak: u64,
}

impl RowSink for Sampling<'_> {
    fn wants(&self, y: u32) -> bool {
        self.pass.wants(y)
    }
    fn put_rgb8(&mut self, y: u32, row: &[u8]) {
        self.peak = self.peak.max(malloc_in_use());
        self.pass.put_rgb8(y, row);
    }
}

/// Peak above the current level while preprocessing `bytes`, and the header's estimate. The
/// peak is the larger of the Rust heap's (the counting allocator) and malloc's as sampled at
/// every decoded row, which also sees what libjpeg allocates itself.
fn measure(name: &str, bytes: &[u8], options: DecodeOptions) -> (u64, u64) {
    let estimate = decode_cost(bytes, options)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .bytes;
    let base = PEAK.current_usage();
    let malloc_base = malloc_in_use();
    PEAK.reset_peak_usage();
    let source = open(bytes, options).unwrap_or_else(|e| panic!("{name}: {e}"));
    let size = source.source_size();
    let (width, height) = source.size();
    let mut pass = HorizontalPass::new(width, height);
    let mut sampling = Sampling {
        pass: &mut pass,
        peak: 0,
    };
    source
        .run(&mut sampling)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let sampled = sampling.peak.saturating_sub(malloc_base);
    pass.finish().unwrap_or_else(|e| panic!("{name}: {e}"));
    let heap = (PEAK.peak_usage() - base) as u64;
    let peak = heap.max(sampled);
    eprintln!(
        "{name:<36} {:>5}x{:<5} heap {:>6.1} MB  malloc {:>6.1} MB  estimate {:>6.1} MB  ({:.2})",
        size.0,
        size.1,
        heap as f64 / MB,
        sampled as f64 / MB,
        estimate as f64 / MB,
        peak as f64 / estimate as f64
    );
    (peak, estimate)
}

fn no_dct() -> DecodeOptions {
    DecodeOptions {
        jpeg_dct_scaling: false,
        ..DecodeOptions::default()
    }
}

#[test]
fn whole_decodes_stay_within_their_header_estimate() {
    let _alone = one_at_a_time();
    use jpeg_encoder::{ColorType as J, SamplingFactor as S};
    use synth::*;
    let (w, h) = (1600, 1200);
    let mut cases: Vec<(&str, Vec<u8>, DecodeOptions)> = vec![
        (
            "JPEG baseline 4:2:0 (libjpeg)",
            jpeg_baseline(&dynamic8(w, h, 3), 90),
            no_dct(),
        ),
        (
            "JPEG baseline grey (libjpeg)",
            jpeg_baseline(&dynamic8(w, h, 1), 90),
            no_dct(),
        ),
        (
            "JPEG progressive 4:2:0 (libjpeg)",
            jpeg(w as u16, h as u16, J::Rgb, true, S::F_2_2, 85),
            no_dct(),
        ),
        (
            "JPEG progressive 4:4:4 (libjpeg)",
            jpeg(w as u16, h as u16, J::Rgb, true, S::F_1_1, 85),
            no_dct(),
        ),
        (
            "JPEG progressive grey (libjpeg)",
            jpeg(w as u16, h as u16, J::Luma, true, S::F_1_1, 85),
            no_dct(),
        ),
        (
            "JPEG CMYK (zune)",
            jpeg(w as u16, h as u16, J::Cmyk, false, S::F_1_1, 85),
            DecodeOptions::default(),
        ),
        (
            "JPEG YCCK progressive (zune)",
            jpeg(w as u16, h as u16, J::CmykAsYcck, true, S::F_2_2, 85),
            DecodeOptions::default(),
        ),
        (
            "JPEG 12 MP baseline (libjpeg 1/2)",
            jpeg_baseline(&dynamic8(4000, 3000, 3), 90),
            DecodeOptions::default(),
        ),
        (
            "JPEG progressive (libjpeg 1/4)",
            jpeg(3000, 2200, J::Rgb, true, S::F_2_2, 85),
            DecodeOptions::default(),
        ),
        (
            "JPEG progressive grey (libjpeg 1/2)",
            jpeg(2400, 2000, J::Luma, true, S::F_1_1, 85),
            DecodeOptions::default(),
        ),
        (
            "PNG interlaced RGB8",
            png_interlaced(w, h, 2, 8, None, None, |x, y| {
                (0..3).map(|c| sample8(x, y, w, h, c)).collect()
            }),
            DecodeOptions::default(),
        ),
        (
            "PNG interlaced RGBA16",
            png_interlaced(w, h, 6, 16, None, None, |x, y| {
                (0..4)
                    .flat_map(|c| sample16(x, y, w, h, c).to_be_bytes())
                    .collect()
            }),
            DecodeOptions::default(),
        ),
        (
            "WebP lossless RGB",
            webp_lossless(&dynamic8(w, h, 3)),
            DecodeOptions::default(),
        ),
        (
            "WebP lossless RGBA",
            webp_lossless(&dynamic8(w, h, 4)),
            DecodeOptions::default(),
        ),
        ("BMP RLE8", bmp_rle8(w, h), DecodeOptions::default()),
        (
            "BMP RGBA",
            encode(&dynamic8(w, h, 4), ImageFormat::Bmp),
            DecodeOptions::default(),
        ),
    ];
    for (name, channels, sixteen) in [
        ("TIFF grey 8-bit", 1, false),
        ("TIFF RGB 8-bit", 3, false),
        ("TIFF RGBA 16-bit", 4, true),
        ("TIFF grey 16-bit", 1, true),
    ] {
        let image = if sixteen {
            dynamic16(w, h, channels)
        } else {
            dynamic8(w, h, channels)
        };
        cases.push((
            name,
            encode(&image, ImageFormat::Tiff),
            DecodeOptions::default(),
        ));
    }
    let float = image::DynamicImage::ImageRgb32F(dynamic16(800, 600, 3).to_rgb32f());
    cases.push((
        "TIFF RGB float",
        encode(&float, ImageFormat::Tiff),
        DecodeOptions::default(),
    ));
    let mut failures = Vec::new();
    for (name, bytes, options) in &cases {
        let (peak, estimate) = measure(name, bytes, *options);
        if peak > estimate {
            failures.push(format!("{name}: peak {peak} > estimate {estimate}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn streamed_images_peak_at_a_few_megabytes_whatever_their_size() {
    let _alone = one_at_a_time();
    use png::{BitDepth as D, ColorType as C};
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "PNG RGBA16 6000x4000 (192 MB)",
            synth::png_streamed(6000, 4000, C::Rgba, D::Sixteen),
        ),
        (
            "PNG RGB8 8000x6000 (144 MB)",
            synth::png_streamed(8000, 6000, C::Rgb, D::Eight),
        ),
        (
            "PNG grey16 16384x2000",
            synth::png_streamed(16384, 2000, C::Grayscale, D::Sixteen),
        ),
        (
            "PNG palette 5000x5000",
            synth::png_streamed(5000, 5000, C::Indexed, D::Eight),
        ),
        (
            "GIF 4000x3000 (48 MB RGBA)",
            synth::gif(4000, 3000, 0, 0, 4000, 3000, false, None, false),
        ),
        (
            "GIF interlaced 4000x3000",
            synth::gif(4000, 3000, 0, 0, 4000, 3000, true, Some(1), false),
        ),
        (
            "GIF frame inside 4000x3000",
            synth::gif(4000, 3000, 100, 50, 3000, 2000, false, None, false),
        ),
    ];
    for (name, bytes) in &cases {
        let (peak, estimate) = measure(name, bytes, DecodeOptions::default());
        assert!(
            peak <= estimate,
            "{name}: peak {peak} > estimate {estimate}"
        );
        assert!(peak < 16_000_000, "{name}: peak {peak} bytes");
    }
}
