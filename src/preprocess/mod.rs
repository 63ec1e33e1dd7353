//! Image bytes → the tensor torchvision's tutorial transform produces, in memory that does not
//! grow with the image wherever the format allows.
//!
//! The tutorial runs `Resize(255)`, `CenterCrop(224)`, `ToTensor()`, `Normalize(mean, std)` on a
//! PIL image. PIL's resize is not a textbook bilinear filter: it is an antialiased convolution
//! with fixed-point (22-bit) coefficients and a rounding to `u8` between its horizontal and
//! vertical passes. [`resize`] ports that arithmetic exactly (`Pillow/src/libImaging/Resample.c`),
//! so that a lossless image gives the tensor PIL gives, and computes only the 224×224 window
//! that the centre crop keeps.
//!
//! A decoder is a [`RowSource`]: it hands rows (any colour mode, converted to RGB8 by
//! [`convert`] exactly as `image`'s `to_rgb8` converts) to the resize's horizontal pass, which
//! keeps only the crop window's columns of the rows the vertical pass reads:
//!
//! - `png.rs`: non-interlaced PNG, row by row: never the full image in memory;
//! - `gif.rs`: the first GIF frame, row by row, placed on its screen;
//! - `libjpeg.rs`: grey and colour JPEGs, row by row by libjpeg-turbo (PIL's decoder), large ones
//!   at a reduced DCT scale;
//! - `whole.rs`: everything else (CMYK JPEG, WebP, TIFF, BMP, interlaced PNG) decoded whole by the
//!   `image` crate, its rows converted one at a time (no full RGB8 copy).
//!
//! Whatever is decoded whole is first costed from its header ([`budget`]) and refused with
//! [`ImageError::TooLarge`] when above [`DecodeOptions::max_alloc_bytes`], before the decoder
//! allocates.

pub mod budget;
pub mod convert;
mod gif;
mod jpeg;
mod libjpeg;
mod png;
pub mod resize;
mod whole;

use std::time::{Duration, Instant};

use image::{DynamicImage, ImageFormat, RgbImage};

pub use budget::decode_budget;
pub use resize::{crop_offset, resized_size, HorizontalPass, RowSink};

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

/// How images are decoded: bounds on what a decoder may allocate, so that a small file claiming
/// a huge image is refused before the allocation rather than after, and whether large JPEGs
/// may be decoded at a reduced DCT scale.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    /// Largest accepted width or height, in pixels.
    pub max_dimension: u32,
    /// Most bytes one decode may allocate, every buffer counted (decoder output, its internal
    /// buffers, the resize's rows), as computed from the header before decoding. Images that
    /// stream need a few rows whatever their size; the others are refused above this. Under
    /// Lambda it follows from the function's memory ([`DecodeOptions::for_function_memory`]).
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
            max_alloc_bytes: budget::DEFAULT_DECODE_BUDGET,
            jpeg_dct_scaling: true,
        }
    }
}

impl DecodeOptions {
    /// The defaults with the decode budget of a Lambda function of `memory_mb` MB
    /// ([`decode_budget`]: `3/4 × memory − 128 MiB`, between 16 and 512 MiB), so that no upload
    /// can take the function past its memory size.
    pub fn for_function_memory(memory_mb: u64) -> DecodeOptions {
        DecodeOptions {
            max_alloc_bytes: decode_budget(memory_mb),
            ..DecodeOptions::default()
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
    /// The image is larger than the decode limits allow: too many pixels a side, or more memory
    /// to decode than the budget. Refused from the header, before the allocation.
    #[error("the image is too large to decode ({reason}); send {instead}")]
    TooLarge {
        /// What was too large.
        reason: String,
        /// What would be accepted instead.
        instead: String,
    },
}

/// The advice of a refusal for size: what fits.
fn dimension_advice(max_dimension: u32) -> String {
    format!("an image of at most {max_dimension} pixels a side")
}

/// Time spent in each preprocessing stage, for the per-request log line and the benches.
#[derive(Debug, Clone, Copy, Default)]
pub struct PreprocessTimings {
    /// Bytes → decoded pixels (for a streamed image: the decoder's share of the interleaved work).
    pub decode: Duration,
    /// Pixels → resized, cropped, normalised tensor (colour conversion and resize).
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

/// A decoder seen from the resize: it knows the size of the rows it will deliver, and hands
/// every row the [`RowSink`] wants to it, converted to RGB8, in any order.
pub trait RowSource {
    /// Width and height of the rows it delivers (smaller than the file's after DCT scaling).
    fn size(&self) -> (u32, u32);
    /// Width and height the file declares.
    fn source_size(&self) -> (u32, u32);
    /// Decodes, delivering each wanted row once. Errors are the image's fault (corrupt data).
    fn run(self: Box<Self>, sink: &mut dyn RowSink) -> Result<(), ImageError>;
}

/// Decodes any supported image from its bytes and applies the tutorial's transform.
pub fn preprocess(bytes: &[u8], options: DecodeOptions) -> Result<Preprocessed, ImageError> {
    let start = Instant::now();
    let source = open(bytes, options)?;
    let source_size = source.source_size();
    let (width, height) = source.size();
    let mut pass = HorizontalPass::new(width, height);
    source.run(&mut pass)?;
    let tensor_start = Instant::now();
    let resize_rows = pass.busy();
    let tensor = pass.finish()?;
    let transform = resize_rows + tensor_start.elapsed();
    Ok(Preprocessed {
        tensor,
        source_size,
        timings: PreprocessTimings {
            decode: start.elapsed().saturating_sub(transform),
            transform,
        },
    })
}

/// Sniffs the format from the content and opens the right row source, having checked the
/// header against the limits (dimensions, and the decode budget). Images decoded whole are
/// decoded here.
pub fn open(bytes: &[u8], options: DecodeOptions) -> Result<Box<dyn RowSource + '_>, ImageError> {
    let budget = options.max_alloc_bytes;
    match plan(bytes, options)? {
        Plan::Png(rows) => {
            rows.cost().check(budget)?;
            Ok(rows)
        }
        Plan::Gif(rows) => {
            rows.cost().check(budget)?;
            Ok(rows)
        }
        Plan::Jpeg(rows) => {
            rows.cost.check(budget)?;
            Ok(rows)
        }
        Plan::Whole(prepared) => {
            prepared.cost.check(budget)?;
            let image = prepared.decode()?;
            let size = (image.width(), image.height());
            Ok(Box::new(whole::Whole::new(image, size)))
        }
    }
}

/// What decoding `bytes` for the model will allocate at most, computed from the header alone
/// (nothing large is allocated): the figure [`DecodeOptions::max_alloc_bytes`] is checked
/// against. Header errors are the errors [`preprocess`] would give.
pub fn decode_cost(bytes: &[u8], options: DecodeOptions) -> Result<budget::Cost, ImageError> {
    Ok(match plan(bytes, options)? {
        Plan::Png(rows) => rows.cost(),
        Plan::Gif(rows) => rows.cost(),
        Plan::Jpeg(rows) => rows.cost.clone(),
        Plan::Whole(prepared) => prepared.cost.clone(),
    })
}

/// How an image will be decoded, its header read.
enum Plan<'a> {
    Png(Box<png::PngRows<'a>>),
    Gif(Box<gif::GifRows<'a>>),
    Jpeg(Box<libjpeg::LibjpegRows<'a>>),
    Whole(Box<whole::Prepared<'a>>),
}

fn plan(bytes: &[u8], options: DecodeOptions) -> Result<Plan<'_>, ImageError> {
    let format = image::guess_format(bytes).map_err(|_| ImageError::UnknownFormat)?;
    match format {
        ImageFormat::Png => {
            if let Some(rows) = png::open(bytes, options)? {
                return Ok(Plan::Png(Box::new(rows)));
            }
        }
        ImageFormat::Gif => {
            if let Some(rows) = gif::open(bytes, options)? {
                return Ok(Plan::Gif(Box::new(rows)));
            }
        }
        ImageFormat::Jpeg if jpeg::is_complete(bytes) => {
            if let Some(rows) = libjpeg::open(bytes, options)? {
                return Ok(Plan::Jpeg(Box::new(rows)));
            }
        }
        _ => {}
    }
    Ok(Plan::Whole(Box::new(prepare_sniffed(
        bytes, format, options,
    )?)))
}

/// Decodes bytes into an image at full size, choosing the format from the content, within the
/// decode budget. GIFs give their first frame. (What [`preprocess`] does for images that cannot
/// be streamed; for callers that want the pixels themselves.)
pub fn decode(bytes: &[u8], options: DecodeOptions) -> Result<DynamicImage, ImageError> {
    let format = image::guess_format(bytes).map_err(|_| ImageError::UnknownFormat)?;
    let prepared = prepare_sniffed(bytes, format, options)?;
    prepared.cost.check(options.max_alloc_bytes)?;
    prepared.decode()
}

fn prepare_sniffed(
    bytes: &[u8],
    format: ImageFormat,
    options: DecodeOptions,
) -> Result<whole::Prepared<'_>, ImageError> {
    if format == ImageFormat::Jpeg && !jpeg::is_complete(bytes) {
        return Err(ImageError::Corrupt(
            "the JPEG data is truncated: no end-of-image marker after the last scan".into(),
        ));
    }
    whole::prepare(bytes, format, options)
}

/// The `image` crate's limits for these options.
fn image_limits(options: DecodeOptions) -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(options.max_dimension);
    limits.max_image_height = Some(options.max_dimension);
    limits.max_alloc = Some(options.max_alloc_bytes);
    limits
}

/// An `image` crate error as ours: limits → 413, anything else → 415.
fn convert_image_error(error: image::ImageError, max_dimension: u32) -> ImageError {
    match error {
        image::ImageError::Limits(l) => ImageError::TooLarge {
            reason: l.to_string(),
            instead: dimension_advice(max_dimension),
        },
        image::ImageError::Unsupported(u) => ImageError::Corrupt(u.to_string()),
        other => ImageError::Corrupt(other.to_string()),
    }
}

/// `Resize(255)` → `CenterCrop(224)` → `ToTensor()` → `Normalize(MEAN, STD)` on an RGB8 image.
pub fn transform(rgb: &RgbImage) -> Vec<f32> {
    let (width, height) = rgb.dimensions();
    if width == 0 || height == 0 {
        return vec![0.0; TENSOR_LEN];
    }
    let mut pass = HorizontalPass::new(width, height);
    for (y, row) in rgb.as_raw().chunks_exact(width as usize * 3).enumerate() {
        pass.put_rgb8(y as u32, row);
    }
    // Every row of a well-formed RgbImage is there.
    pass.finish().unwrap_or_else(|_| vec![0.0; TENSOR_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_function_memory_sets_only_the_budget() {
        let options = DecodeOptions::for_function_memory(512);
        assert_eq!(options.max_alloc_bytes, 256 * budget::MIB);
        assert_eq!(
            options.max_dimension,
            DecodeOptions::default().max_dimension
        );
        assert!(options.jpeg_dct_scaling);
    }
}
