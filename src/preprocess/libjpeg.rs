//! JPEG through libjpeg-turbo's decoder (as built into mozjpeg by `mozjpeg-sys`), the decoder PIL
//! itself uses, read one scanline at a time into the resize.
//!
//! The tutorial's tensors come from PIL, whose JPEG decoder is libjpeg-turbo; the pure-Rust
//! decoders differ from it by a few units on some pixels. With the same decoder, the same
//! arithmetic (integer IDCT, fancy upsampling, its YCbCr→RGB tables) gives the same pixels, and
//! its SIMD entropy and IDCT code is faster. Rows are pulled with `jpeg_read_scanlines`, so the
//! image is never held whole: a baseline JPEG needs a few MCU rows at any size; a progressive one
//! (or one whose components come in separate scans) holds its coefficients, as every decoder
//! must. Large JPEGs are decoded at a reduced DCT scale (1/2, 1/4, 1/8, as PIL's `draft()`),
//! the shorter side kept at least [`DCT_SCALED_SIDE`].
//!
//! Grey and YCbCr/RGB files come here; CMYK/YCCK and anything libjpeg will not read past its
//! header (e.g. 12-bit samples, arithmetic coding) stay with the `image` crate (`whole.rs`), as
//! before. libjpeg reports a fatal error by unwinding (the `mozjpeg` crate's error manager); it
//! is caught here and becomes [`ImageError::Corrupt`].

use std::panic::{catch_unwind, AssertUnwindSafe};

use mozjpeg::{ColorSpace, Decompress};

use super::allowance::Allowance;
use super::budget::{work, Cost, MIB};
use super::error::{dimension_advice, ImageError};
use super::jpeg_header::{JpegHeader, Scans};
use super::options::{DecodeOptions, DCT_SCALED_SIDE};
use super::reader::UploadReader;
use super::resize::{resize_bytes, RowSink, RowSource};

/// A JPEG whose header libjpeg has read, ready to be decoded row by row.
pub struct LibjpegRows<'a> {
    decompress: Decompress<UploadReader<'a>>,
    allowance: Allowance,
    out_size: (u32, u32),
    source_size: (u32, u32),
    /// What the decode will allocate.
    pub cost: Cost,
}

/// What a fatal libjpeg error unwound with, as text.
fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "libjpeg failed".into())
}

/// The numerator (of 8) of the DCT scale for a `width`×`height` JPEG: the smallest of 1, 2, 4, 8
/// that keeps the shorter side at least [`DCT_SCALED_SIDE`] (8, full size, for images whose
/// shorter side is below twice that, or when scaling is off).
pub fn dct_scale(width: u32, height: u32, scaling: bool) -> u8 {
    let short = u64::from(width.min(height));
    if !scaling || short < 2 * u64::from(DCT_SCALED_SIDE) {
        return 8;
    }
    [1u8, 2, 4]
        .into_iter()
        .find(|&n| (short * u64::from(n)).div_ceil(8) >= u64::from(DCT_SCALED_SIDE))
        .unwrap_or(8)
}

/// Reads the header of a complete JPEG (the caller checked the end-of-image marker) and sets up
/// its decode. `None` leaves the file to the `image` crate: four components (CMYK, YCCK), or a
/// header libjpeg refuses. Too many pixels a side is a 413 here.
pub fn open<'a>(
    bytes: &'a [u8],
    options: DecodeOptions,
    allowance: &Allowance,
) -> Result<Option<LibjpegRows<'a>>, ImageError> {
    let Some(header) = JpegHeader::parse(bytes) else {
        return Ok(None);
    };
    if !matches!(header.sampling.len(), 1 | 3) {
        return Ok(None);
    }
    // Read through the request's allowance: libjpeg consumes every scan of a progressive JPEG
    // before its first row, and a read is where it can be stopped.
    let reader = UploadReader::new(bytes, allowance);
    let read = catch_unwind(AssertUnwindSafe(|| {
        Decompress::builder().from_reader(reader)
    }));
    let Ok(Ok(mut decompress)) = read else {
        return Ok(None);
    };
    let (width, height) = (decompress.width() as u32, decompress.height() as u32);
    if (width, height) != (header.width, header.height)
        || !matches!(
            decompress.color_space(),
            ColorSpace::JCS_GRAYSCALE | ColorSpace::JCS_YCbCr | ColorSpace::JCS_RGB
        )
    {
        return Ok(None);
    }
    if width > options.max_dimension || height > options.max_dimension {
        return Err(ImageError::TooLarge {
            reason: format!("{width}x{height} pixels"),
            instead: dimension_advice(options.max_dimension),
        });
    }
    if width == 0 || height == 0 {
        return Err(ImageError::ZeroSized { width, height });
    }
    let scale = dct_scale(width, height, options.jpeg_dct_scaling);
    decompress.scale(scale);
    // libjpeg's output size at scale n/8: ceil(side × n / 8).
    let out = |side: u32| (u64::from(side) * u64::from(scale)).div_ceil(8) as u32;
    let out_size = (out(width), out(height));
    let cost = cost(&header, &header.scans(bytes), bytes.len(), scale, out_size);
    Ok(Some(LibjpegRows {
        decompress,
        allowance: allowance.clone(),
        out_size,
        source_size: (width, height),
        cost,
    }))
}

/// What libjpeg allocates to decode `header`'s image at `scale`/8 into `out` pixels, with the
/// resize: every coefficient of the image (2 bytes each, MCU-padded) when it must hold them
/// (progressive, or components in separate scans); else one MCU row of coefficients; the sample
/// rows of one MCU row per component with the row groups above and below that fancy upsampling
/// reads (×3, at the reduced size), the colour-converted output row and ours, the resize, and
/// 1 MiB for libjpeg's tables and everything small.
///
/// Its work: every scan walks every block of its components ([`JpegHeader::scans`]), then every
/// block is dequantised, transformed and converted (at the DCT scale's share of its samples),
/// every byte entropy-decoded, and the output resized.
fn cost(header: &JpegHeader, scans: &Scans, bytes: usize, scale: u8, out: (u32, u32)) -> Cost {
    let (hmax, vmax, mcu_x, _) = header.mcus();
    let components = header.sampling.len() as u64;
    let coefficients = if header.holds_coefficients() {
        header.blocks() * 64 * 2
    } else {
        components * mcu_x * hmax * vmax * 64 * 2
    };
    let share = f64::from(scale * scale) / 64.0;
    let scale = u64::from(scale);
    let sample_rows = components * (mcu_x * 8 * hmax * scale / 8 + 16) * (8 * vmax * scale / 8) * 3;
    let output_rows = 2 * u64::from(out.0) * 3;
    let work = scans.block_visits as f64 * work::JPEG_PER_BLOCK_VISIT
        + scans.refined_coefficients as f64 * work::JPEG_PER_REFINED_COEFFICIENT
        + header.blocks() as f64 * (work::JPEG_PER_BLOCK * share + work::JPEG_PER_SCALED_BLOCK)
        + bytes as f64
            * if header.progressive {
                work::JPEG_PROGRESSIVE_PER_BYTE
            } else {
                work::JPEG_PER_BYTE
            }
        + work::resize(out.0, out.1);
    Cost {
        bytes: coefficients + sample_rows + output_rows + resize_bytes(out.0, out.1) + MIB,
        work: work::ns(work),
        size: (header.width, header.height),
        kind: if header.progressive {
            "progressive JPEG"
        } else {
            "JPEG"
        },
        instead: "a baseline JPEG, which is decoded a few rows at a time",
    }
}

impl RowSource for LibjpegRows<'_> {
    fn size(&self) -> (u32, u32) {
        self.out_size
    }

    fn source_size(&self) -> (u32, u32) {
        self.source_size
    }

    fn run(self: Box<Self>, sink: &mut dyn RowSink) -> Result<(), ImageError> {
        let LibjpegRows {
            decompress,
            out_size,
            allowance,
            ..
        } = *self;
        let decoded = catch_unwind(AssertUnwindSafe(|| -> std::io::Result<()> {
            let mut started = decompress.rgb()?;
            if (started.width() as u32, started.height() as u32) != out_size {
                return Err(std::io::Error::other(format!(
                    "libjpeg decodes {}x{}, expected {}x{}",
                    started.width(),
                    started.height(),
                    out_size.0,
                    out_size.1
                )));
            }
            let mut row = vec![0u8; out_size.0 as usize * 3];
            for y in 0..out_size.1 {
                if allowance.is_cancelled() {
                    return Err(std::io::Error::other("the request was given up"));
                }
                started.read_scanlines_into(&mut row)?;
                if sink.wants(y) {
                    sink.put_rgb8(y, &row);
                }
            }
            started.finish()
        }));
        match decoded {
            _ if allowance.is_cancelled() => Err(ImageError::Abandoned),
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ImageError::Corrupt(format!("libjpeg: {e}"))),
            Err(payload) => Err(ImageError::Corrupt(message(payload))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dct_scale_keeps_the_shorter_side_at_least_510() {
        assert_eq!(dct_scale(720, 720, true), 8);
        assert_eq!(dct_scale(1019, 4000, true), 8);
        assert_eq!(dct_scale(1020, 1020, true), 4);
        assert_eq!(dct_scale(4000, 3000, true), 2);
        assert_eq!(dct_scale(4080, 4080, true), 1);
        assert_eq!(dct_scale(4073, 4073, true), 1, "ceil(4073 / 8) = 510");
        assert_eq!(dct_scale(4072, 4072, true), 2);
        assert_eq!(dct_scale(4000, 3000, false), 8);
    }

    #[test]
    fn a_jpeg_is_decoded_row_by_row_at_the_reduced_scale() {
        let mut jpeg = Vec::new();
        let image = image::RgbImage::from_fn(1100, 1040, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&image)
            .unwrap();
        let rows = open(&jpeg, DecodeOptions::default(), &Allowance::new(u64::MAX))
            .unwrap()
            .unwrap();
        assert_eq!(rows.source_size(), (1100, 1040));
        assert_eq!(rows.size(), (550, 520));
        assert!(!rows.cost.kind.contains("progressive"));
        struct Count(u32);
        impl RowSink for Count {
            fn wants(&self, _: u32) -> bool {
                true
            }
            fn put_rgb8(&mut self, _: u32, row: &[u8]) {
                assert_eq!(row.len(), 550 * 3);
                self.0 += 1;
            }
        }
        let mut count = Count(0);
        Box::new(rows).run(&mut count).unwrap();
        assert_eq!(count.0, 520);
    }

    #[test]
    fn a_damaged_jpeg_is_an_error_not_a_panic() {
        let mut jpeg = Vec::new();
        let image = image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8, y as u8, 0]));
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&image)
            .unwrap();
        // A Huffman table claiming more codes than it has: libjpeg's fatal error unwinds.
        let dht = jpeg.windows(2).position(|w| w == [0xFF, 0xC4]).unwrap();
        for b in &mut jpeg[dht + 5..dht + 21] {
            *b = 0xFF;
        }
        let decoded = super::super::preprocess(&jpeg, DecodeOptions::default());
        assert!(
            matches!(decoded, Err(ImageError::Corrupt(_))),
            "{decoded:?}"
        );
    }

    #[test]
    fn cmyk_is_left_to_the_image_crate() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let cmyk = std::fs::read_dir(path)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.to_string_lossy().contains("cmyk") && p.extension().is_some_and(|e| e == "jpg")
            });
        if let Some(cmyk) = cmyk {
            let bytes = std::fs::read(cmyk).unwrap();
            assert!(
                open(&bytes, DecodeOptions::default(), &Allowance::new(u64::MAX))
                    .unwrap()
                    .is_none()
            );
        }
    }
}
