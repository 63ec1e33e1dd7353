//! Image bytes → the tensor torchvision's tutorial transform produces.
//!
//! The tutorial runs `Resize(255)`, `CenterCrop(224)`, `ToTensor()`, `Normalize(mean, std)` on a
//! PIL image. PIL's resize is not a textbook bilinear filter: it is an antialiased convolution
//! with fixed-point (22-bit) coefficients and a rounding to `u8` between its horizontal and
//! vertical passes. This module ports that arithmetic exactly (`Pillow/src/libImaging/Resample.c`),
//! so that a lossless image gives the tensor PIL gives, and computes only the 224×224 window that
//! the centre crop keeps.

use std::io::Cursor;
use std::time::{Duration, Instant};

use image::{DynamicImage, ImageReader, RgbImage};

/// Side of the square the model sees (torchvision `CenterCrop(224)`).
pub const CROP: u32 = 224;
/// Target of the shorter side before cropping (torchvision `Resize(255)`).
pub const RESIZE: u32 = 255;
/// ImageNet channel means used by the tutorial's `Normalize`.
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations used by the tutorial's `Normalize`.
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Number of `f32` values in one preprocessed image (`3 × 224 × 224`).
pub const TENSOR_LEN: usize = 3 * (CROP as usize) * (CROP as usize);

/// PIL's fixed-point precision for 8-bit resampling (`PRECISION_BITS` in Resample.c).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// How images are decoded: bounds on what a decoder may allocate, so that a small file claiming
/// a huge image is refused before the allocation rather than after, and whether large JPEGs
/// may be decoded at a reduced DCT scale.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    /// Largest accepted width or height, in pixels.
    pub max_dimension: u32,
    /// Largest number of bytes the decoder may allocate for one image.
    pub max_alloc_bytes: u64,
    /// Decode a JPEG whose shorter side is at least twice [`DCT_SCALED_SIDE`] at 1/2, 1/4 or 1/8
    /// of its size (the inverse DCT at reduced size, as libjpeg's `scale_num`/PIL's `draft`
    /// do), keeping the shorter side at least [`DCT_SCALED_SIDE`]. A 12-megapixel photo then
    /// decodes several times faster; the tensor differs slightly from a full decode (README).
    pub jpeg_dct_scaling: bool,
}

impl Default for DecodeOptions {
    /// 16384 px a side and 512 MiB: room for any camera photo (a 100-megapixel RGBA frame is
    /// 400 MB), far below what would exhaust a 3 GB Lambda. DCT scaling on.
    fn default() -> Self {
        DecodeOptions {
            max_dimension: 16_384,
            max_alloc_bytes: 512 * 1024 * 1024,
            jpeg_dct_scaling: true,
        }
    }
}

/// The shorter side a DCT-scaled JPEG keeps at least: twice what `Resize(255)` needs, so the
/// antialiased resize still does the final reduction.
pub const DCT_SCALED_SIDE: u32 = 2 * RESIZE;

/// Why bytes could not become a tensor. Each variant maps to one HTTP status in `api`.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The bytes are not in a format we decode (sniffed from content, never from names).
    #[error("the upload is not a recognised image; send a JPEG, PNG, GIF, WebP, BMP or TIFF file")]
    UnknownFormat,
    /// The format was recognised but the data is corrupt or truncated.
    #[error("the image could not be decoded ({0}); send an intact JPEG, PNG, GIF, WebP, BMP or TIFF file")]
    Corrupt(String),
    /// The image has no pixels.
    #[error("the image is empty ({width}x{height} pixels); send an image at least 1x1")]
    ZeroSized { width: u32, height: u32 },
    /// The image is larger than the decode limits allow.
    #[error("the image is too large to decode ({reason}); send an image of at most {max_dimension} pixels a side")]
    TooLarge { reason: String, max_dimension: u32 },
}

/// Time spent in each preprocessing stage, for the per-request log line and the benches.
#[derive(Debug, Clone, Copy, Default)]
pub struct PreprocessTimings {
    /// Bytes → decoded pixels (any mode).
    pub decode: Duration,
    /// Pixels → RGB8 → resized, cropped, normalised tensor.
    pub transform: Duration,
}

/// A preprocessed image: the model's input and what the log line reports about it.
#[derive(Debug, Clone)]
pub struct Preprocessed {
    /// `[3, 224, 224]` normalised values, channel-major (one image of an NCHW batch).
    pub tensor: Vec<f32>,
    /// Width and height of the decoded image.
    pub source_size: (u32, u32),
    /// Where the time went.
    pub timings: PreprocessTimings,
}

/// Decodes any supported image from its bytes and applies the tutorial's transform.
pub fn preprocess(bytes: &[u8], options: DecodeOptions) -> Result<Preprocessed, ImageError> {
    let start = Instant::now();
    let (image, source_size) = decode_for_model(bytes, options)?;
    let decoded = Instant::now();
    let rgb = into_rgb8(image);
    let tensor = transform(&rgb);
    let timings = PreprocessTimings {
        decode: decoded - start,
        transform: decoded.elapsed(),
    };
    Ok(Preprocessed {
        tensor,
        source_size,
        timings,
    })
}

/// A decoded image and the width and height it has in the file (before any DCT scaling).
pub type Decoded = (DynamicImage, (u32, u32));

/// Decodes bytes for the model: like [`decode`], but a large JPEG may come out DCT-scaled
/// (see [`DecodeOptions::jpeg_dct_scaling`]). Also returns the image's full size.
pub fn decode_for_model(bytes: &[u8], options: DecodeOptions) -> Result<Decoded, ImageError> {
    if options.jpeg_dct_scaling && bytes.starts_with(&[0xFF, 0xD8, 0xFF]) && jpeg_is_complete(bytes)
    {
        if let Some(scaled) = decode_jpeg_scaled(bytes, options)? {
            return Ok(scaled);
        }
    }
    let image = decode(bytes, options)?;
    let size = (image.width(), image.height());
    Ok((image, size))
}

/// Decodes a large 8-bit grey or RGB JPEG at a reduced DCT scale. `None` when the image is too
/// small to gain from it or in a mode this path does not handle (CMYK, 16-bit): the full
/// decoder takes those.
fn decode_jpeg_scaled(bytes: &[u8], options: DecodeOptions) -> Result<Option<Decoded>, ImageError> {
    use jpeg_decoder::{Decoder, PixelFormat};
    let corrupt = |e: jpeg_decoder::Error| ImageError::Corrupt(e.to_string());
    let mut decoder = Decoder::new(bytes);
    decoder.read_info().map_err(corrupt)?;
    let Some(info) = decoder.info() else {
        return Ok(None);
    };
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    if width > options.max_dimension || height > options.max_dimension {
        return Err(ImageError::TooLarge {
            reason: format!("{width}x{height} pixels"),
            max_dimension: options.max_dimension,
        });
    }
    let short = width.min(height);
    if short < 2 * DCT_SCALED_SIDE
        || !matches!(info.pixel_format, PixelFormat::L8 | PixelFormat::RGB24)
    {
        return Ok(None);
    }
    // The decoder picks the smallest 1/8..8/8 scale whose output is at least this size.
    let request = |side: u32| {
        (u64::from(side) * u64::from(DCT_SCALED_SIDE)).div_ceil(u64::from(short)) as u16
    };
    let (out_w, out_h) = decoder
        .scale(request(width), request(height))
        .map_err(corrupt)?;
    let pixels = decoder.decode().map_err(corrupt)?;
    let (out_w, out_h) = (u32::from(out_w), u32::from(out_h));
    let image = match info.pixel_format {
        PixelFormat::L8 => {
            image::GrayImage::from_raw(out_w, out_h, pixels).map(DynamicImage::ImageLuma8)
        }
        _ => RgbImage::from_raw(out_w, out_h, pixels).map(DynamicImage::ImageRgb8),
    };
    match image {
        Some(image) => Ok(Some((image, (width, height)))),
        None => Err(ImageError::Corrupt(
            "the JPEG decoder returned fewer pixels than its header promised".into(),
        )),
    }
}

/// Decodes bytes into an image at full size, choosing the format from the content. GIFs give
/// their first frame.
pub fn decode(bytes: &[u8], limits: DecodeOptions) -> Result<DynamicImage, ImageError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    match reader.format() {
        None => return Err(ImageError::UnknownFormat),
        Some(image::ImageFormat::Jpeg) if !jpeg_is_complete(bytes) => {
            return Err(ImageError::Corrupt(
                "the JPEG data is truncated: no end-of-image marker after the last scan".into(),
            ));
        }
        Some(_) => {}
    }
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_dimension);
    image_limits.max_image_height = Some(limits.max_dimension);
    image_limits.max_alloc = Some(limits.max_alloc_bytes);
    reader.limits(image_limits);
    let image = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(l) => ImageError::TooLarge {
            reason: l.to_string(),
            max_dimension: limits.max_dimension,
        },
        image::ImageError::Unsupported(u) => ImageError::Corrupt(u.to_string()),
        other => ImageError::Corrupt(other.to_string()),
    })?;
    if image.width() == 0 || image.height() == 0 {
        return Err(ImageError::ZeroSized {
            width: image.width(),
            height: image.height(),
        });
    }
    Ok(image)
}

/// Whether a JPEG's last scan (SOS marker) is followed by an end-of-image marker. The decoder
/// would fill a truncated image with grey and answer anyway; PIL refuses it, and so do we.
/// (0xFF bytes inside scan data are always stuffed, so the marker pair cannot occur by chance.)
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes
        .windows(2)
        .rposition(|w| w == [0xFF, 0xDA])
        .unwrap_or(0);
    bytes[last_scan..].windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Converts any colour mode to 8-bit RGB as PIL's `convert('RGB')` does for 8-bit data: grey is
/// replicated, alpha is dropped (not composited). 16-bit and float samples are scaled to 8 bits.
pub fn into_rgb8(image: DynamicImage) -> RgbImage {
    match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    }
}

/// `Resize(255)` → `CenterCrop(224)` → `ToTensor()` → `Normalize(MEAN, STD)` on an RGB8 image.
pub fn transform(rgb: &RgbImage) -> Vec<f32> {
    let (width, height) = rgb.dimensions();
    let (new_w, new_h) = resized_size(width, height);
    let left = crop_offset(new_w);
    let top = crop_offset(new_h);
    let horizontal = Coefficients::new(width, new_w, left, CROP);
    let vertical = Coefficients::new(height, new_h, top, CROP);
    let window = resample(rgb.as_raw(), width as usize, &horizontal, &vertical);
    normalize(&window)
}

/// The size torchvision's `Resize(255)` gives: shorter side 255, longer `int(255 * long / short)`.
pub fn resized_size(width: u32, height: u32) -> (u32, u32) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    // Python computes `int(size * long / short)` in double precision and truncates.
    let new_long = (f64::from(RESIZE) * f64::from(long) / f64::from(short)) as u32;
    if width <= height {
        (RESIZE, new_long.max(1))
    } else {
        (new_long.max(1), RESIZE)
    }
}

/// torchvision's `CenterCrop` offset: `int(round((dim - 224) / 2))`, with Python's round-half-even.
pub fn crop_offset(dim: u32) -> u32 {
    let offset = ((f64::from(dim) - f64::from(CROP)) / 2.0).round_ties_even();
    offset.max(0.0) as u32
}

/// PIL's resampling weights for the output pixels `first..first + count` of a resize from
/// `in_size` to `out_size` along one axis, already in 22-bit fixed point.
struct Coefficients {
    /// First input index each output pixel reads.
    starts: Vec<usize>,
    /// Fixed-point weights, `taps` per output pixel (zero-padded).
    weights: Vec<i32>,
    /// Number of weights per output pixel.
    taps: usize,
}

impl Coefficients {
    /// Port of `precompute_coeffs` + `normalize_coeffs_8bpc` (bilinear filter, support 1).
    fn new(in_size: u32, out_size: u32, first: u32, count: u32) -> Coefficients {
        let scale = f64::from(in_size) / f64::from(out_size);
        let filterscale = scale.max(1.0);
        let support = filterscale; // bilinear support (1.0) × filterscale
        let taps = (support.ceil() as usize) * 2 + 1;
        let count = count as usize;
        let mut starts = Vec::with_capacity(count);
        let mut weights = vec![0i32; count * taps];
        let mut window = vec![0f64; taps];
        for (i, xx) in (first..first + count as u32).enumerate() {
            let center = (f64::from(xx) + 0.5) * scale;
            let ss = 1.0 / filterscale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size)) as usize;
            let len = xmax.saturating_sub(xmin).min(taps);
            let mut total = 0.0;
            for (x, w) in window.iter_mut().enumerate().take(len) {
                *w = bilinear((x as f64 + xmin as f64 - center + 0.5) * ss);
                total += *w;
            }
            for (x, w) in window.iter().enumerate().take(len) {
                let k = if total != 0.0 { w / total } else { *w };
                let fixed = k * f64::from(1u32 << PRECISION_BITS);
                weights[i * taps + x] = if k < 0.0 {
                    (fixed - 0.5) as i32
                } else {
                    (fixed + 0.5) as i32
                };
            }
            starts.push(xmin);
        }
        Coefficients {
            starts,
            weights,
            taps,
        }
    }

    /// Input rows (or columns) that the selected output pixels read: `first..end`.
    fn span(&self, in_size: usize) -> (usize, usize) {
        let first = self.starts.first().copied().unwrap_or(0);
        let end = self
            .starts
            .last()
            .map_or(0, |s| (s + self.taps).min(in_size));
        (first, end)
    }
}

/// PIL's triangle filter.
fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// PIL's `clip8`: fixed-point accumulator → `u8`, saturating.
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Two-pass fixed-point resample of an interleaved RGB8 image restricted to the crop window,
/// horizontal first with a rounding to `u8` in between, as PIL does. Returns 224×224 RGB8.
fn resample(
    src: &[u8],
    width: usize,
    horizontal: &Coefficients,
    vertical: &Coefficients,
) -> Vec<u8> {
    let height = src.len() / (3 * width);
    let out_w = horizontal.starts.len();
    let out_h = vertical.starts.len();
    let (row_first, row_end) = vertical.span(height);
    let half = 1i32 << (PRECISION_BITS - 1);

    // Horizontal pass over only the source rows the vertical pass will read.
    let rows = row_end - row_first;
    let mut temp = vec![0u8; rows * out_w * 3];
    for (r, out_row) in temp.chunks_exact_mut(out_w * 3).enumerate() {
        let row = &src[(row_first + r) * width * 3..(row_first + r + 1) * width * 3];
        for (x, out_px) in out_row.chunks_exact_mut(3).enumerate() {
            let start = horizontal.starts[x];
            let k = &horizontal.weights[x * horizontal.taps..(x + 1) * horizontal.taps];
            let mut acc = [half; 3];
            let taps = k.len().min(width - start);
            for (t, &w) in k[..taps].iter().enumerate() {
                let px = &row[(start + t) * 3..(start + t) * 3 + 3];
                acc[0] += i32::from(px[0]) * w;
                acc[1] += i32::from(px[1]) * w;
                acc[2] += i32::from(px[2]) * w;
            }
            out_px[0] = clip8(acc[0]);
            out_px[1] = clip8(acc[1]);
            out_px[2] = clip8(acc[2]);
        }
    }

    // Vertical pass: each output row is a weighted sum of intermediate rows.
    let stride = out_w * 3;
    let mut out = vec![0u8; out_h * stride];
    let mut acc = vec![0i32; stride];
    for (y, out_row) in out.chunks_exact_mut(stride).enumerate() {
        let start = vertical.starts[y] - row_first;
        let k = &vertical.weights[y * vertical.taps..(y + 1) * vertical.taps];
        acc.fill(half);
        let taps = k.len().min(rows - start);
        for (t, &w) in k[..taps].iter().enumerate() {
            if w == 0 {
                continue;
            }
            let row = &temp[(start + t) * stride..(start + t + 1) * stride];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += i32::from(v) * w;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// `ToTensor()` + `Normalize(MEAN, STD)` in f32, as torch computes it: `(v / 255 - mean) / std`,
/// written channel-major.
fn normalize(rgb: &[u8]) -> Vec<f32> {
    /// Every possible normalised value per channel, computed once per process.
    static LUT: once_cell::sync::Lazy<[[f32; 256]; 3]> = once_cell::sync::Lazy::new(|| {
        std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 / 255.0 - MEAN[c]) / STD[c]))
    });
    let plane = rgb.len() / 3;
    let mut tensor = vec![0f32; rgb.len()];
    for (c, lut) in LUT.iter().enumerate() {
        let out = &mut tensor[c * plane..(c + 1) * plane];
        for (o, px) in out.iter_mut().zip(rgb.chunks_exact(3)) {
            *o = lut[usize::from(px[c])];
        }
    }
    tensor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resized_size_follows_torchvision() {
        assert_eq!(resized_size(720, 720), (255, 255));
        assert_eq!(resized_size(224, 168), (340, 255));
        assert_eq!(resized_size(451, 300), (383, 255));
        assert_eq!(resized_size(1, 1000), (255, 255_000));
    }

    #[test]
    fn crop_offset_rounds_half_to_even() {
        assert_eq!(crop_offset(255), 16); // 15.5 → 16
        assert_eq!(crop_offset(257), 16); // 16.5 → 16
        assert_eq!(crop_offset(224), 0);
    }

    #[test]
    fn identity_resize_keeps_pixels() {
        let c = Coefficients::new(10, 10, 0, 10);
        let src: Vec<u8> = (0..10 * 10 * 3).map(|i| (i * 7 % 256) as u8).collect();
        let out = resample(&src, 10, &c, &Coefficients::new(10, 10, 0, 10));
        assert_eq!(out, src);
    }

    #[test]
    fn uniform_image_stays_uniform() {
        let rgb = RgbImage::from_pixel(1000, 37, image::Rgb([10, 128, 250]));
        let t = transform(&rgb);
        assert_eq!(t.len(), TENSOR_LEN);
        let plane = TENSOR_LEN / 3;
        for c in 0..3 {
            let v = [10u8, 128, 250][c];
            let want = (f32::from(v) / 255.0 - MEAN[c]) / STD[c];
            assert!(t[c * plane..(c + 1) * plane].iter().all(|&x| x == want));
        }
    }
}
