//! How images are decoded: the limits a decode must stay within (checked from the header, before
//! anything large is allocated) and whether large JPEGs may be decoded at a reduced DCT scale.

use super::allowance::DEFAULT_MAX_WORK_NS;
use super::budget::{self, decode_budget};
use super::resize::RESIZE;

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
    /// Most estimated decode work one request may spend, in nanoseconds of the reference core,
    /// shared by its images ([`super::allowance`]); an image whose header says it would take
    /// longer is refused before decoding.
    pub max_work_ns: u64,
}

impl Default for DecodeOptions {
    /// 16384 px a side and 512 MiB: room for any camera photo (a 100-megapixel RGBA frame is
    /// 400 MB), far below what would exhaust a 3 GB Lambda. DCT scaling on. 0.6 s of decode
    /// work a request.
    fn default() -> Self {
        DecodeOptions {
            max_dimension: 16_384,
            max_alloc_bytes: budget::DEFAULT_DECODE_BUDGET,
            jpeg_dct_scaling: true,
            max_work_ns: DEFAULT_MAX_WORK_NS,
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

impl DecodeOptions {
    /// A fresh allowance of [`DecodeOptions::max_work_ns`] for one request.
    pub fn allowance(&self) -> super::allowance::Allowance {
        super::allowance::Allowance::new(self.max_work_ns)
    }
}

/// The `image` crate's limits for these options.
pub(super) fn image_limits(options: DecodeOptions) -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(options.max_dimension);
    limits.max_image_height = Some(options.max_dimension);
    limits.max_alloc = Some(options.max_alloc_bytes);
    limits
}
