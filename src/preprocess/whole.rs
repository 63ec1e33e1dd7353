//! Images that are decoded whole: JPEG, WebP, TIFF, BMP, interlaced PNG (and the odd GIF or PNG
//! the streaming readers leave to `image`). What each decode allocates is counted from the
//! header and checked against the budget before decoding; the image is then decoded by the
//! `image` crate exactly as `ImageReader::decode` would (same decoders, same limits), and its
//! rows are converted to RGB8 one at a time as the resize asks for them, never as a full copy.

use std::io::Cursor;

use image::codecs::{bmp::BmpDecoder, gif::GifDecoder, jpeg::JpegDecoder, png::PngDecoder};
use image::codecs::{tiff::TiffDecoder, webp::WebPDecoder};
use image::{DynamicImage, ImageDecoder, ImageFormat};

use super::allowance::Allowance;
use super::budget::{work, Cost, MIB};
use super::colour::{row_to_rgb8, RowFormat};
use super::error::{convert_image_error, ImageError};
use super::options::{image_limits, DecodeOptions};
use super::reader::UploadReader;
use super::resize::{resize_bytes, RowSink, RowSource};
use super::{jpeg_header, png};

/// A decoded image as a row source, and the size it has in the file (it differs after DCT
/// scaling).
pub struct Whole {
    image: DynamicImage,
    source_size: (u32, u32),
    allowance: Allowance,
}

impl Whole {
    /// Wraps a decoded image whose file said `source_size`; its rows are handed over while
    /// `allowance` is not cancelled.
    pub fn new(image: DynamicImage, source_size: (u32, u32), allowance: &Allowance) -> Whole {
        Whole {
            image,
            source_size,
            allowance: allowance.clone(),
        }
    }
}

impl RowSource for Whole {
    fn size(&self) -> (u32, u32) {
        (self.image.width(), self.image.height())
    }

    fn source_size(&self) -> (u32, u32) {
        self.source_size
    }

    fn run(self: Box<Self>, sink: &mut dyn RowSink) -> Result<(), ImageError> {
        let (width, height) = (self.image.width() as usize, self.image.height() as usize);
        let format = |channels, sixteen| RowFormat {
            channels,
            sixteen,
            big_endian: false,
        };
        let layout = match &self.image {
            DynamicImage::ImageRgb8(rgb) => {
                // Already RGB8: the rows are handed over in place.
                for (y, row) in rgb.as_raw().chunks_exact(width * 3).enumerate() {
                    if sink.wants(y as u32) {
                        sink.put_rgb8(y as u32, row);
                    }
                }
                return Ok(());
            }
            DynamicImage::ImageLuma8(_) => Some(format(1, false)),
            DynamicImage::ImageLumaA8(_) => Some(format(2, false)),
            DynamicImage::ImageRgba8(_) => Some(format(4, false)),
            DynamicImage::ImageLuma16(_) => Some(format(1, true)),
            DynamicImage::ImageLumaA16(_) => Some(format(2, true)),
            DynamicImage::ImageRgb16(_) => Some(format(3, true)),
            DynamicImage::ImageRgba16(_) => Some(format(4, true)),
            _ => None,
        };
        let mut rgb = vec![0u8; width * 3];
        match layout {
            Some(layout) => {
                let stride = width * layout.bytes_per_pixel();
                for (y, row) in self.image.as_bytes().chunks_exact(stride).enumerate() {
                    self.allowance.check()?;
                    if sink.wants(y as u32) {
                        row_to_rgb8(layout, row, &mut rgb);
                        sink.put_rgb8(y as u32, &rgb);
                    }
                }
            }
            None => {
                // Float samples (TIFF): `image`'s own conversion, one row at a time.
                for y in 0..height as u32 {
                    self.allowance.check()?;
                    if sink.wants(y) {
                        let row = self.image.crop_imm(0, y, width as u32, 1).to_rgb8();
                        sink.put_rgb8(y, row.as_raw());
                    }
                }
            }
        }
        Ok(())
    }
}

/// Bytes of the pixels of `decoder`'s output.
fn out_bytes(decoder: &dyn ImageDecoder) -> u64 {
    decoder.total_bytes()
}

/// What decoding `decoder` (already past the header) will allocate, by format.
fn cost(format: ImageFormat, decoder: &dyn ImageDecoder, bytes: &[u8], extra: Extra) -> Cost {
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    let out = out_bytes(decoder);
    let resize = resize_bytes(width.max(1), height.max(1));
    let pixels_f = pixels as f64;
    let cost = |bytes: u64, work: f64, kind: &'static str, instead: &'static str| Cost {
        bytes: bytes + resize + MIB,
        work: work::ns(work + work::resize(width, height)),
        size: (width, height),
        kind,
        instead,
    };
    match format {
        ImageFormat::Jpeg => {
            let mut c = jpeg_header::zune_cost(bytes, width, height, out);
            c.bytes = c.bytes.max(out + resize);
            c
        }
        ImageFormat::Png => cost(
            out + png::row_bytes(decoder.color_type(), width),
            out as f64 * work::PNG_INTERLACED_PER_BYTE,
            "interlaced PNG",
            "a non-interlaced PNG, which is decoded row by row at any size",
        ),
        ImageFormat::WebP => {
            // image-webp 0.2: lossless without alpha decodes RGBA and copies it to RGB (4 B/px
            // more); lossy adds its Y, U and V planes padded to 16 px (1.5 B/px) and, with
            // alpha, the alpha plane decoded as RGBA then kept as one byte (5 B/px); an animated
            // image composes its first frame on an RGBA canvas (4 + 4 B/px more).
            let padded = (u64::from(width) + 15) * (u64::from(height) + 15);
            let lossy = pixels_f * work::WEBP_LOSSY_PER_PIXEL
                + bytes.len() as f64 * work::WEBP_LOSSY_PER_BYTE;
            let (kind, extra_bytes, work) = match extra.webp {
                WebPKind::Lossless { alpha: true } => {
                    ("WebP", pixels, pixels_f * work::WEBP_LOSSLESS_PER_PIXEL)
                }
                WebPKind::Lossless { alpha: false } => {
                    ("WebP", 5 * pixels, pixels_f * work::WEBP_LOSSLESS_PER_PIXEL)
                }
                WebPKind::Lossy { alpha: false } => {
                    ("WebP", padded * 3 / 2 + bytes.len() as u64, lossy)
                }
                WebPKind::Lossy { alpha: true } => (
                    "WebP",
                    padded * 3 / 2 + 5 * pixels + bytes.len() as u64,
                    lossy,
                ),
                // An animation's frame is either; its first frame errs long as lossy.
                WebPKind::Animated => ("animated WebP", 15 * padded + bytes.len() as u64, lossy),
            };
            cost(
                out + extra_bytes,
                work,
                kind,
                "a JPEG, or a non-interlaced PNG, which is decoded row by row at any size",
            )
        }
        ImageFormat::Tiff => {
            // `image` decodes into the tiff crate's buffer (CMYK: 4 or 8 B/px), then copies or
            // converts into its own; a JPEG-compressed strip or tile is decoded whole, with its
            // coefficients, into a third; compressed data is read one chunk at a time.
            let decoded =
                pixels * u64::from(decoder.original_color_type().bits_per_pixel()).div_ceil(8);
            let jpeg_chunks = if extra.tiff_jpeg {
                decoded + pixels * 8
            } else {
                0
            };
            let jpeg_work = if extra.tiff_jpeg {
                pixels_f / 64.0 * work::JPEG_PER_BLOCK
            } else {
                0.0
            };
            cost(
                out + decoded + jpeg_chunks + bytes.len() as u64,
                (decoded + out) as f64 * work::TIFF_PER_RAW_BYTE + jpeg_work,
                "TIFF",
                "a JPEG, or a non-interlaced PNG, which is decoded row by row at any size",
            )
        }
        ImageFormat::Gif => cost(
            // The first frame's own RGBA buffer when it does not cover the canvas; `image`
            // checks that one against the limits itself.
            out + u64::from(width) * 4 * 2,
            pixels_f * work::GIF_PER_PIXEL,
            "GIF",
            "a smaller GIF, or a non-interlaced PNG, which is decoded row by row at any size",
        ),
        _ => cost(
            // BMP: the output and one row.
            out + u64::from(width) * 4 * 2,
            pixels_f * work::BMP_PER_PIXEL,
            "BMP",
            "a JPEG, or a non-interlaced PNG, which is decoded row by row at any size",
        ),
    }
}

/// What the `image` decoder's own methods do not say but the cost depends on.
#[derive(Debug, Clone, Copy, Default)]
struct Extra {
    /// Which WebP decoder runs.
    webp: WebPKind,
    /// A TIFF whose strips or tiles are JPEG-compressed.
    tiff_jpeg: bool,
}

/// An `image` decoder past the header, with what its decode will allocate.
pub struct Prepared<'a> {
    decoder: Box<dyn ImageDecoder + 'a>,
    limits: image::Limits,
    max_dimension: u32,
    /// What the decode will allocate.
    pub cost: Cost,
}

/// Reads the header of `bytes` (sniffed as `format`) with the `image` crate's decoder for it,
/// checks the dimensions, and costs the decode. Formats this build does not decode are an error.
pub fn prepare<'a>(
    bytes: &'a [u8],
    format: ImageFormat,
    options: DecodeOptions,
    allowance: &Allowance,
) -> Result<Prepared<'a>, ImageError> {
    let convert = |e| convert_image_error(e, options.max_dimension);
    let limits = image_limits(options);
    let cursor = UploadReader::new(bytes, allowance);
    let mut extra = Extra::default();
    let decoder: Box<dyn ImageDecoder> = match format {
        ImageFormat::Png => {
            Box::new(PngDecoder::with_limits(cursor, limits.clone()).map_err(convert)?)
        }
        ImageFormat::Jpeg => Box::new(JpegDecoder::new(cursor).map_err(convert)?),
        ImageFormat::Gif => Box::new(GifDecoder::new(cursor).map_err(convert)?),
        ImageFormat::WebP => {
            let decoder = WebPDecoder::new(cursor).map_err(convert)?;
            extra.webp = if decoder.has_animation() {
                WebPKind::Animated
            } else {
                WebPKind::of(bytes)
            };
            Box::new(decoder)
        }
        ImageFormat::Tiff => {
            extra.tiff_jpeg = tiff_is_jpeg_compressed(bytes);
            Box::new(TiffDecoder::new(cursor).map_err(convert)?)
        }
        ImageFormat::Bmp => Box::new(BmpDecoder::new(cursor).map_err(convert)?),
        // Formats the build does not decode: `image` says so, as it always did.
        _ => {
            let mut reader = image::ImageReader::with_format(cursor, format);
            reader.limits(limits);
            return Err(match reader.decode() {
                Err(e) => convert(e),
                Ok(_) => ImageError::UnknownFormat,
            });
        }
    };
    let (width, height) = decoder.dimensions();
    limits.check_dimensions(width, height).map_err(convert)?;
    let cost = cost(format, &*decoder, bytes, extra);
    Ok(Prepared {
        decoder,
        limits,
        max_dimension: options.max_dimension,
        cost,
    })
}

impl Prepared<'_> {
    /// Decodes as `ImageReader::decode` does (the output buffer reserved against the limits,
    /// which then bound the decoder's own allocations where it honours them). The caller has
    /// checked the cost against the budget.
    pub fn decode(self) -> Result<DynamicImage, ImageError> {
        let convert = |e| convert_image_error(e, self.max_dimension);
        let mut limits = self.limits;
        let mut decoder = self.decoder;
        limits.reserve(decoder.total_bytes()).map_err(convert)?;
        decoder.set_limits(limits).map_err(convert)?;
        let image = DynamicImage::from_decoder(decoder).map_err(convert)?;
        if image.width() == 0 || image.height() == 0 {
            return Err(ImageError::ZeroSized {
                width: image.width(),
                height: image.height(),
            });
        }
        Ok(image)
    }
}

/// The kind of WebP bitstream, which decides what image-webp allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WebPKind {
    Lossless { alpha: bool },
    Lossy { alpha: bool },
    Animated,
}

impl Default for WebPKind {
    /// The costliest: used when the chunks cannot be read.
    fn default() -> Self {
        WebPKind::Animated
    }
}

impl WebPKind {
    /// Reads the RIFF chunk list (fourcc, little-endian size, data padded to even length).
    fn of(bytes: &[u8]) -> WebPKind {
        let mut at = 12;
        let (mut lossless, mut lossy, mut alpha) = (None, false, false);
        while let Some(header) = bytes.get(at..at + 8) {
            let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
            match &header[..4] {
                b"VP8L" => lossless = Some(at + 8),
                b"VP8 " => lossy = true,
                b"ALPH" => alpha = true,
                b"ANIM" | b"ANMF" => return WebPKind::Animated,
                _ => {}
            }
            at = at
                .saturating_add(8)
                .saturating_add(size)
                .saturating_add(size & 1);
        }
        match (lossless, lossy) {
            (Some(data), false) => {
                // The VP8L header says whether alpha is used: bit 28 of the 4 bytes after its
                // one-byte signature (14 bits width − 1, 14 bits height − 1, then this bit).
                let alpha = bytes
                    .get(data + 1..data + 5)
                    .is_some_and(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) >> 28 & 1 == 1);
                WebPKind::Lossless { alpha }
            }
            (None, true) => WebPKind::Lossy { alpha },
            _ => WebPKind::Animated,
        }
    }
}

/// Whether a TIFF's first image is JPEG-compressed (Compression 6 or 7). Unreadable tags count
/// as not: the decoder will refuse the file anyway.
fn tiff_is_jpeg_compressed(bytes: &[u8]) -> bool {
    let Ok(mut decoder) = tiff::decoder::Decoder::new(Cursor::new(bytes)) else {
        return false;
    };
    let compression = decoder.find_tag(tiff::tags::Tag::Compression);
    matches!(
        compression.map(|v| v.map(|v| v.into_u16())),
        Ok(Some(Ok(6 | 7)))
    )
}
