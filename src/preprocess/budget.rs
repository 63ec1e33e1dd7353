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

/// What decoding one image will allocate at most, counted before decoding it.
#[derive(Debug, Clone)]
pub struct Cost {
    /// Bytes, every buffer that exists at the decode's peak counted.
    pub bytes: u64,
    /// Width and height of the image.
    pub size: (u32, u32),
    /// What kind of image it is, for the refusal ("progressive JPEG", "interlaced PNG"…).
    pub kind: &'static str,
    /// What would decode within budget, for the refusal ("a baseline JPEG", …).
    pub instead: &'static str,
}

impl Cost {
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
