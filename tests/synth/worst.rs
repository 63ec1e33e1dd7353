//! The worst uploads that fit the 6 MiB body limit, for every format and colour mode: as large
//! in pixels as the dimension limit allows, and, for the formats decoded whole, as large as a
//! 512 MB function's decode budget allows. `tests/memory.rs` sends them to `serve` in a 512 MB
//! cgroup; `examples/decode_work.rs` times their decodes against the work estimates.

use super::big;

/// One upload: its name, bytes and the status it must get (`None`: 200 or 413, whichever the
/// budget decides).
pub struct Case {
    pub name: String,
    pub bytes: Vec<u8>,
    pub expect: Option<u16>,
}

fn case(name: impl Into<String>, bytes: Vec<u8>, expect: Option<u16>) -> Case {
    Case {
        name: name.into(),
        bytes,
        expect,
    }
}

/// The uploads. Max: 16384 px a side (WebP: 16383, its format's limit).
pub fn cases() -> Vec<Case> {
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
