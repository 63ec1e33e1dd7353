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
//! [`colour`] exactly as `image`'s `to_rgb8` converts) to the resize's horizontal pass, which
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

pub mod allowance;
pub mod budget;
pub mod colour;
pub mod error;
mod gif;
mod jpeg_header;
mod libjpeg;
pub mod options;
mod png;
pub mod reader;
pub mod resize;
mod whole;

use std::time::{Duration, Instant};

use image::ImageFormat;

pub use allowance::{Allowance, CancelOnDrop};
pub use budget::decode_budget;
pub use error::ImageError;
pub use options::{DecodeOptions, DCT_SCALED_SIDE};
pub use resize::{
    crop_offset, resized_size, HorizontalPass, RowSink, RowSource, CROP, MEAN, RESIZE, STD,
    TENSOR_LEN,
};

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

/// Decodes any supported image from its bytes and applies the tutorial's transform, within a
/// fresh allowance of [`DecodeOptions::max_work_ns`].
pub fn preprocess(bytes: &[u8], options: DecodeOptions) -> Result<Preprocessed, ImageError> {
    preprocess_within(bytes, options, &options.allowance())
}

/// [`preprocess`] within a request's allowance, shared with its other images: the decode's
/// estimated work is taken from it (or the image refused), and the decode stops as soon as it
/// is cancelled.
pub fn preprocess_within(
    bytes: &[u8],
    options: DecodeOptions,
    allowance: &Allowance,
) -> Result<Preprocessed, ImageError> {
    let start = Instant::now();
    let preprocessed = (|| {
        let source = open_within(bytes, options, allowance)?;
        let source_size = source.source_size();
        let (width, height) = source.size();
        let mut pass = HorizontalPass::new(width, height);
        source.run(&mut pass)?;
        Ok((pass, source_size))
    })();
    let (pass, source_size) = preprocessed.map_err(|e| match e {
        // A decoder stopped by the cancellation reports it as a read error.
        _ if allowance.is_cancelled() => ImageError::Abandoned,
        e => e,
    })?;
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
/// header against the limits (dimensions, the decode budget, the decode work). Images decoded
/// whole are decoded here.
pub fn open(bytes: &[u8], options: DecodeOptions) -> Result<Box<dyn RowSource + '_>, ImageError> {
    open_within(bytes, options, &options.allowance())
}

/// [`open`] within a request's allowance.
pub fn open_within<'a>(
    bytes: &'a [u8],
    options: DecodeOptions,
    allowance: &Allowance,
) -> Result<Box<dyn RowSource + 'a>, ImageError> {
    let budget = options.max_alloc_bytes;
    let plan = plan(bytes, options, allowance)?;
    let cost = plan.cost();
    cost.check(budget)?;
    allowance.spend(&cost)?;
    match plan {
        Plan::Png(rows) => Ok(rows),
        Plan::Gif(rows) => Ok(rows),
        Plan::Jpeg(rows) => Ok(rows),
        Plan::Whole(prepared) => {
            let image = prepared.decode()?;
            let size = (image.width(), image.height());
            Ok(Box::new(whole::Whole::new(image, size, allowance)))
        }
    }
}

/// What decoding `bytes` for the model will allocate at most, and its estimated work, computed
/// from the header and the stream alone (nothing large is allocated): the figures
/// [`DecodeOptions::max_alloc_bytes`] and the request's allowance are checked against. Header
/// errors are the errors [`preprocess`] would give.
pub fn decode_cost(bytes: &[u8], options: DecodeOptions) -> Result<budget::Cost, ImageError> {
    Ok(plan(bytes, options, &options.allowance())?.cost())
}

/// How an image will be decoded, its header read.
enum Plan<'a> {
    Png(Box<png::PngRows<'a>>),
    Gif(Box<gif::GifRows<'a>>),
    Jpeg(Box<libjpeg::LibjpegRows<'a>>),
    Whole(Box<whole::Prepared<'a>>),
}

impl Plan<'_> {
    /// What the decode will allocate and its work.
    fn cost(&self) -> budget::Cost {
        match self {
            Plan::Png(rows) => rows.cost(),
            Plan::Gif(rows) => rows.cost(),
            Plan::Jpeg(rows) => rows.cost.clone(),
            Plan::Whole(prepared) => prepared.cost.clone(),
        }
    }
}

fn plan<'a>(
    bytes: &'a [u8],
    options: DecodeOptions,
    allowance: &Allowance,
) -> Result<Plan<'a>, ImageError> {
    let format = image::guess_format(bytes).map_err(|_| ImageError::UnknownFormat)?;
    match format {
        ImageFormat::Png => {
            if let Some(rows) = png::open(bytes, options, allowance)? {
                return Ok(Plan::Png(Box::new(rows)));
            }
        }
        ImageFormat::Gif => {
            if let Some(rows) = gif::open(bytes, options, allowance)? {
                return Ok(Plan::Gif(Box::new(rows)));
            }
        }
        ImageFormat::Jpeg if jpeg_header::is_complete(bytes) => {
            if let Some(rows) = libjpeg::open(bytes, options, allowance)? {
                return Ok(Plan::Jpeg(Box::new(rows)));
            }
        }
        _ => {}
    }
    Ok(Plan::Whole(Box::new(prepare_sniffed(
        bytes, format, options, allowance,
    )?)))
}

fn prepare_sniffed<'a>(
    bytes: &'a [u8],
    format: ImageFormat,
    options: DecodeOptions,
    allowance: &Allowance,
) -> Result<whole::Prepared<'a>, ImageError> {
    if format == ImageFormat::Jpeg && !jpeg_header::is_complete(bytes) {
        return Err(ImageError::Corrupt(
            "the JPEG data is truncated: no end-of-image marker after the last scan".into(),
        ));
    }
    whole::prepare(bytes, format, options, allowance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    /// `Resize(255)` → `CenterCrop(224)` → `ToTensor()` → `Normalize(MEAN, STD)` on an RGB8 image.
    fn transform(rgb: &RgbImage) -> Vec<f32> {
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
