//! How much memory one decode may take, and what a decode will take, known from the header
//! before anything large is allocated.
//!
//! A Lambda function dies (`Runtime.OutOfMemory`, a bare 502 and a cold start for the next
//! caller) when it crosses its configured memory. Images that stream (non-interlaced PNG, GIF,
//! see `png.rs` and `gif.rs`) need a few rows whatever their size. The others are decoded whole
//! by their decoders, and what those allocate (output buffer, 16-bit data, coefficient buffers of
//! progressive JPEGs, WebP's planes and canvas, TIFF's second buffer…) is computed here from the
//! header and refused with 413 when above the budget. docs/memory.md has the measurements behind
//! each figure.

use super::error::ImageError;

/// One mebibyte.
pub const MIB: u64 = 1024 * 1024;

/// The share of the function's memory the process may use at all: the rest is headroom for the
/// allocator's fragmentation, the binary's own pages and whatever the kernel charges besides.
pub const MEMORY_SHARE: (u64, u64) = (3, 4);

/// What the serving process holds besides the decode: DenseNet-121 loaded and after its first
/// inference (~90 MB RSS with the NNEF archive, ~106 MB at the peak of an ONNX load, measured),
/// plus the request's buffers (a 6 MiB body, its multipart copy, base64 under Lambda).
pub const PROCESS_FOOTPRINT: u64 = 128 * MIB;

/// The smallest budget a memory size gives: below ~256 MB the model itself does not fit, and the
/// service should still decode ordinary photos rather than refuse everything.
pub const MIN_DECODE_BUDGET: u64 = 16 * MIB;

/// The decode budget outside Lambda, and the most any function size gives: 512 MiB.
pub const DEFAULT_DECODE_BUDGET: u64 = 512 * MIB;

/// The decode budget of a Lambda function of `memory_mb` MB (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`):
/// `3/4 × memory − 128 MiB`, at least 16 MiB and at most the 512 MiB default. 512 MB gives
/// 256 MiB, 1024 MB 640 → 512 MiB, 256 MB 64 MiB.
pub fn decode_budget(memory_mb: u64) -> u64 {
    let usable = memory_mb.saturating_mul(MIB) / MEMORY_SHARE.1 * MEMORY_SHARE.0;
    usable
        .saturating_sub(PROCESS_FOOTPRINT)
        .clamp(MIN_DECODE_BUDGET, DEFAULT_DECODE_BUDGET)
}

/// What decoding one image will allocate at most, and about how long it will take, counted
/// before decoding it.
#[derive(Debug, Clone)]
pub struct Cost {
    /// Bytes, every buffer that exists at the decode's peak counted.
    pub bytes: u64,
    /// The decode's and the resize's estimated time, in nanoseconds of the reference core (see
    /// [`work`]), checked against the request's allowance.
    pub work: u64,
    /// Width and height of the image.
    pub size: (u32, u32),
    /// What kind of image it is, for the refusal ("progressive JPEG", "interlaced PNG"…).
    pub kind: &'static str,
    /// What would decode within budget, for the refusal ("a baseline JPEG", …).
    pub instead: &'static str,
}

impl Cost {
    /// The 413 of a decode whose estimated work does not fit in what the request has `left` of
    /// its allowance (`limit` in all).
    pub fn too_much_work(&self, limit: u64, left: u64) -> ImageError {
        let seconds = |ns: u64| ns as f64 / 1e9;
        let shared = if left < limit {
            format!(
                " (the upload's other images have used {:.2} s of it)",
                seconds(limit - left)
            )
        } else {
            String::new()
        };
        ImageError::TooLarge {
            reason: format!(
                "decoding this {}x{} {} would take about {:.2} s, more than the {:.2} s this service spends decoding one request{shared}",
                self.size.0,
                self.size.1,
                self.kind,
                seconds(self.work),
                seconds(limit),
            ),
            instead: format!("{}, or fewer images per request", self.instead),
        }
    }

    /// `Ok` when the decode fits in `budget` bytes; else the 413 that says why and what to send.
    pub fn check(&self, budget: u64) -> Result<(), ImageError> {
        if self.bytes <= budget {
            return Ok(());
        }
        let pixels = u64::from(self.size.0) * u64::from(self.size.1);
        let per_pixel = self.bytes as f64 / pixels.max(1) as f64;
        let max_megapixels = budget as f64 / per_pixel / 1e6;
        Err(ImageError::TooLarge {
            reason: format!(
                "decoding this {}x{} {} takes about {} MB, above this service's decode budget of {} MB",
                self.size.0,
                self.size.1,
                self.kind,
                self.bytes.div_ceil(1_000_000),
                budget / 1_000_000
            ),
            instead: format!(
                "one of at most {:.1} megapixels, or {}",
                max_megapixels, self.instead
            ),
        })
    }
}

/// How long each decoder's work takes, in nanoseconds of the reference core (AMD EPYC Zen 3 at
/// ~3 GHz, one core), measured with `examples/decode_work.rs` on the worst inputs of each kind and
/// rounded up, so that an estimate errs long. Lambda's vCPUs are slower (~1.3× on its Intel
/// Xeon hosts), which [`super::allowance::DEFAULT_MAX_WORK_NS`] leaves room for.
pub mod work {
    /// One pixel of a row the resize reads: colour conversion and the horizontal pass.
    pub const RESIZE_PER_PIXEL: f64 = 1.5;
    /// libjpeg: one 8×8 block visited by one scan (Huffman decoding walks every block of the
    /// scan's components, whatever the scan holds; an empty one costs ~7).
    pub const JPEG_PER_BLOCK_VISIT: f64 = 20.0;
    /// libjpeg: one coefficient of a block a refinement scan walks
    /// (the JPEG header's `Scans`; ~0.95 when the scan holds nothing).
    pub const JPEG_PER_REFINED_COEFFICIENT: f64 = 1.5;
    /// libjpeg: one block's dequantisation, inverse DCT, upsampling and colour conversion at full
    /// scale; at DCT scale n/8 it produces (n/8)² of the samples and costs that share.
    pub const JPEG_PER_BLOCK: f64 = 60.0;
    /// libjpeg: what one block costs at any DCT scale (bookkeeping and the DC coefficient).
    pub const JPEG_PER_SCALED_BLOCK: f64 = 8.0;
    /// libjpeg: one byte of entropy-coded data, baseline.
    pub const JPEG_PER_BYTE: f64 = 12.0;
    /// libjpeg: one byte of entropy-coded data, progressive (its scans' coefficients are read
    /// from and written back to the whole image's buffer).
    pub const JPEG_PROGRESSIVE_PER_BYTE: f64 = 30.0;
    /// zune-jpeg (CMYK, YCCK and what libjpeg refuses): one block, scans and output together.
    pub const ZUNE_PER_BLOCK_VISIT: f64 = 30.0;
    /// PNG: one byte of raw (inflated, filtered) image data.
    pub const PNG_PER_RAW_BYTE: f64 = 1.5;
    /// Interlaced PNG: one byte of the whole decoded image, Adam7's seven passes inflated,
    /// unfiltered and scattered into it.
    pub const PNG_INTERLACED_PER_BYTE: f64 = 4.5;
    /// GIF: one pixel of the first frame (LZW decoding and palette lookup).
    pub const GIF_PER_PIXEL: f64 = 6.0;
    /// Lossless WebP (VP8L): one pixel.
    pub const WEBP_LOSSLESS_PER_PIXEL: f64 = 12.0;
    /// Lossy WebP (VP8, with or without its alpha plane): one pixel, predicted and transformed.
    pub const WEBP_LOSSY_PER_PIXEL: f64 = 22.0;
    /// Lossy WebP: one byte of the upload, entropy-decoded into coefficients.
    pub const WEBP_LOSSY_PER_BYTE: f64 = 110.0;
    /// TIFF: one byte of decoded sample data (decompression and copies).
    pub const TIFF_PER_RAW_BYTE: f64 = 1.5;
    /// BMP: one pixel (RLE included).
    pub const BMP_PER_PIXEL: f64 = 4.5;
    /// What every decode costs besides its pixels: the header, buffers, the vertical pass.
    pub const FIXED: f64 = 200_000.0;

    /// The resize's share of a `width × height` image: the rows it reads, at most all of them.
    pub fn resize(width: u32, height: u32) -> f64 {
        u64::from(width) as f64 * u64::from(height) as f64 * RESIZE_PER_PIXEL
    }

    /// Nanoseconds as the whole number [`super::Cost::work`] holds.
    pub fn ns(estimate: f64) -> u64 {
        (estimate + FIXED).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_follows_the_formula() {
        assert_eq!(decode_budget(512), 256 * MIB);
        assert_eq!(decode_budget(1024), 512 * MIB); // 640 MiB, capped at the default
        assert_eq!(decode_budget(768), 448 * MIB);
        assert_eq!(decode_budget(256), 64 * MIB);
        assert_eq!(decode_budget(128), MIN_DECODE_BUDGET);
        assert_eq!(decode_budget(10_240), DEFAULT_DECODE_BUDGET);
        assert_eq!(decode_budget(u64::MAX), DEFAULT_DECODE_BUDGET);
        assert_eq!(decode_budget(0), MIN_DECODE_BUDGET);
    }

    #[test]
    fn a_refusal_says_what_would_fit() {
        let cost = Cost {
            bytes: 600 * MIB,
            work: 0,
            size: (10_000, 10_000),
            kind: "progressive JPEG",
            instead: "a baseline JPEG",
        };
        assert!(cost.check(600 * MIB).is_ok());
        let message = cost.check(256 * MIB).unwrap_err().to_string();
        assert!(
            message.contains("10000x10000 progressive JPEG"),
            "{message}"
        );
        assert!(message.contains("268 MB"), "{message}");
        assert!(
            message.contains("send one of at most 42.7 megapixels"),
            "{message}"
        );
        assert!(message.contains("baseline JPEG"), "{message}");
    }
}
