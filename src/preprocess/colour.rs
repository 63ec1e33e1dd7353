//! One row of any colour mode → RGB8, with exactly the rules of the `image` crate's
//! `DynamicImage::to_rgb8` (image 0.25.10), so that every decoder gives the pixels `image` gives:
//!
//! - grey (with or without alpha), 8- or 16-bit: through `f32` as `image`'s CICP fallback does
//!   (`v as f32 * (1 / MAX)`, then `(x * 255).round()`), and replicated to R, G and B;
//! - RGB(A) 16-bit: `(v + 128) / 257` (`FromPrimitive<u16> for u8`);
//! - alpha is dropped, never composited (PIL's `convert('RGB')`).
//!
//! The per-value results are tabulated once from those formulas; `tests` compares every possible
//! value with `image`'s own conversion.

use once_cell::sync::Lazy;

/// How the samples of a row are laid out, as a decoder hands the row over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowFormat {
    /// 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA.
    pub channels: usize,
    /// 16-bit samples (else 8-bit).
    pub sixteen: bool,
    /// 16-bit samples are big-endian (PNG) rather than native-endian (`image` buffers).
    pub big_endian: bool,
}

impl RowFormat {
    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> usize {
        self.channels * if self.sixteen { 2 } else { 1 }
    }
}

/// 8-bit grey → 8-bit channel, as `image` computes it through `f32`.
static GREY8: Lazy<[u8; 256]> = Lazy::new(|| {
    const R: f32 = 1.0 / u8::MAX as f32;
    std::array::from_fn(|v| (v as f32 * R * u8::MAX as f32).round() as u8)
});

/// 16-bit grey → 8-bit channel, as `image` computes it through `f32`.
static GREY16: Lazy<Vec<u8>> = Lazy::new(|| {
    const R: f32 = 1.0 / u16::MAX as f32;
    (0..=u16::MAX)
        .map(|v| (v as f32 * R * u8::MAX as f32).round() as u8)
        .collect()
});

/// 16-bit colour channel → 8 bits, `image`'s `FromPrimitive<u16> for u8`.
#[inline]
fn colour16(v: u16) -> u8 {
    ((u32::from(v) + 128) / 257) as u8
}

/// Converts one row of `format` (`src`, `width × bytes_per_pixel` bytes) into RGB8 (`dst`,
/// `width × 3` bytes).
pub fn row_to_rgb8(format: RowFormat, src: &[u8], dst: &mut [u8]) {
    let bpp = format.bytes_per_pixel();
    let sample16 = |b: &[u8]| {
        if format.big_endian {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_ne_bytes([b[0], b[1]])
        }
    };
    let pixels = src.chunks_exact(bpp).zip(dst.chunks_exact_mut(3));
    match (format.channels, format.sixteen) {
        (1 | 2, false) => {
            let lut = &*GREY8;
            for (px, out) in pixels {
                let v = lut[usize::from(px[0])];
                out.copy_from_slice(&[v, v, v]);
            }
        }
        (1 | 2, true) => {
            let lut = &*GREY16;
            for (px, out) in pixels {
                let v = lut[usize::from(sample16(px))];
                out.copy_from_slice(&[v, v, v]);
            }
        }
        (_, false) => {
            for (px, out) in pixels {
                out.copy_from_slice(&px[..3]);
            }
        }
        (_, true) => {
            for (px, out) in pixels {
                out[0] = colour16(sample16(&px[0..2]));
                out[1] = colour16(sample16(&px[2..4]));
                out[2] = colour16(sample16(&px[4..6]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, ImageBuffer};

    fn ours(format: RowFormat, src: &[u8]) -> Vec<u8> {
        let mut dst = vec![0; src.len() / format.bytes_per_pixel() * 3];
        row_to_rgb8(format, src, &mut dst);
        dst
    }

    const fn f(channels: usize, sixteen: bool) -> RowFormat {
        RowFormat {
            channels,
            sixteen,
            big_endian: false,
        }
    }

    #[test]
    fn every_8bit_value_converts_as_image_does() {
        let values: Vec<u8> = (0..=255).collect();
        let w = values.len() as u32;
        let luma = DynamicImage::ImageLuma8(ImageBuffer::from_raw(w, 1, values.clone()).unwrap());
        assert_eq!(ours(f(1, false), &values), luma.to_rgb8().into_raw());
        let la: Vec<u8> = values.iter().flat_map(|&v| [v, 255 - v]).collect();
        let luma_a = DynamicImage::ImageLumaA8(ImageBuffer::from_raw(w, 1, la.clone()).unwrap());
        assert_eq!(ours(f(2, false), &la), luma_a.to_rgb8().into_raw());
        let rgba: Vec<u8> = values
            .iter()
            .flat_map(|&v| [v, v / 2, 255 - v, v ^ 0x5A])
            .collect();
        let img = DynamicImage::ImageRgba8(ImageBuffer::from_raw(w, 1, rgba.clone()).unwrap());
        assert_eq!(ours(f(4, false), &rgba), img.to_rgb8().into_raw());
    }

    #[test]
    fn every_16bit_value_converts_as_image_does() {
        let values: Vec<u16> = (0..=u16::MAX).collect();
        let w = values.len() as u32;
        let bytes = |v: &[u16], be: bool| -> Vec<u8> {
            v.iter()
                .flat_map(|s| if be { s.to_be_bytes() } else { s.to_ne_bytes() })
                .collect()
        };
        let luma = DynamicImage::ImageLuma16(ImageBuffer::from_raw(w, 1, values.clone()).unwrap());
        let want = luma.to_rgb8().into_raw();
        assert_eq!(ours(f(1, true), &bytes(&values, false)), want);
        let be = RowFormat {
            big_endian: true,
            ..f(1, true)
        };
        assert_eq!(ours(be, &bytes(&values, true)), want);

        let la: Vec<u16> = values.iter().flat_map(|&v| [v, !v]).collect();
        let img = DynamicImage::ImageLumaA16(ImageBuffer::from_raw(w, 1, la.clone()).unwrap());
        assert_eq!(
            ours(f(2, true), &bytes(&la, false)),
            img.to_rgb8().into_raw()
        );

        let rgb: Vec<u16> = values
            .iter()
            .flat_map(|&v| [v, v.rotate_left(5), !v])
            .collect();
        let img = DynamicImage::ImageRgb16(ImageBuffer::from_raw(w, 1, rgb.clone()).unwrap());
        assert_eq!(
            ours(f(3, true), &bytes(&rgb, false)),
            img.to_rgb8().into_raw()
        );

        let rgba: Vec<u16> = values
            .iter()
            .flat_map(|&v| [!v, v, v.rotate_left(9), v])
            .collect();
        let img = DynamicImage::ImageRgba16(ImageBuffer::from_raw(w, 1, rgba.clone()).unwrap());
        let be = RowFormat {
            big_endian: true,
            ..f(4, true)
        };
        assert_eq!(ours(be, &bytes(&rgba, true)), img.to_rgb8().into_raw());
    }
}
