//! PNG as a stream of rows: the png crate (the version and settings the `image` crate uses:
//! `Transformations::EXPAND`, text chunks read, its byte limit) unfilters one row at a time, and
//! each row the resize needs is converted to RGB8 and handed over. Peak memory is a few rows
//! plus the resize's intermediate, whatever the image's size. Interlaced (Adam7) PNGs cannot be
//! streamed (a row is complete only after the last pass) and go to `whole.rs`.

use image::error::{DecodingError, LimitError, LimitErrorKind, ParameterError, ParameterErrorKind};
use image::ImageFormat;

use super::allowance::Allowance;
use super::budget::{work, Cost, MIB};
use super::colour::{row_to_rgb8, RowFormat};
use super::error::{convert_image_error, ImageError};
use super::options::{image_limits, DecodeOptions};
use super::reader::UploadReader;
use super::resize::{resize_bytes, RowSink, RowSource};

/// What the png crate holds while it unfilters rows of `width` pixels of `color` (after
/// expansion), besides its zlib state: the decompressed stream kept for shifting back (at least
/// 128 KiB, else 4 rows), the row being unfiltered and the previous one. Bounded at 8 rows +
/// 512 KiB (docs/memory.md has the measured figures).
pub fn row_bytes(color: image::ColorType, width: u32) -> u64 {
    let row = u64::from(color.bytes_per_pixel()) * u64::from(width) + 1;
    8 * row + 512 * 1024
}

/// The `image` crate's mapping of png errors (`ImageError::from_png`), so that a streamed PNG
/// fails with the message the `image` crate gives for the same file.
fn from_png(err: png::DecodingError) -> image::ImageError {
    use png::DecodingError::*;
    match err {
        IoError(err) => image::ImageError::IoError(err),
        err @ Format(_) => {
            image::ImageError::Decoding(DecodingError::new(ImageFormat::Png.into(), err))
        }
        err @ Parameter(_) => image::ImageError::Parameter(ParameterError::from_kind(
            ParameterErrorKind::Generic(err.to_string()),
        )),
        LimitsExceeded => {
            image::ImageError::Limits(LimitError::from_kind(LimitErrorKind::InsufficientMemory))
        }
    }
}

/// A non-interlaced PNG being decoded row by row.
pub struct PngRows<'a> {
    reader: png::Reader<UploadReader<'a>>,
    allowance: Allowance,
    width: u32,
    height: u32,
    format: RowFormat,
    max_dimension: u32,
}

/// Reads a PNG's header and, if it can be streamed, returns its row source; `None` leaves the
/// image to the whole-image decoder (interlaced, or anything unusual, whose errors the `image`
/// crate reports itself).
pub fn open<'a>(
    bytes: &'a [u8],
    options: DecodeOptions,
    allowance: &Allowance,
) -> Result<Option<PngRows<'a>>, ImageError> {
    let convert = |e: png::DecodingError| convert_image_error(from_png(e), options.max_dimension);
    let limits = image_limits(options);
    let max_bytes = usize::try_from(options.max_alloc_bytes).unwrap_or(usize::MAX);
    let mut decoder = png::Decoder::new_with_limits(
        UploadReader::new(bytes, allowance),
        png::Limits { bytes: max_bytes },
    );
    decoder.set_ignore_text_chunk(false);
    let info = decoder.read_header_info().map_err(convert)?;
    let (width, height, interlaced) = (info.width, info.height, info.interlaced);
    limits
        .check_dimensions(width, height)
        .map_err(|e| convert_image_error(e, options.max_dimension))?;
    if interlaced || width == 0 || height == 0 {
        return Ok(None);
    }
    decoder.set_transformations(png::Transformations::EXPAND);
    let reader = decoder.read_info().map_err(convert)?;
    let (color, depth) = reader.output_color_type();
    let channels = match color {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Ok(None),
    };
    let sixteen = match depth {
        png::BitDepth::Eight => false,
        png::BitDepth::Sixteen => true,
        _ => return Ok(None),
    };
    let format = RowFormat {
        channels,
        sixteen,
        big_endian: true,
    };
    let rows = PngRows {
        reader,
        allowance: allowance.clone(),
        width,
        height,
        format,
        max_dimension: options.max_dimension,
    };
    Ok(Some(rows))
}

impl PngRows<'_> {
    /// What streaming this image allocates: the png crate's row buffers, one native and one RGB8
    /// row of ours, the resize.
    pub fn cost(&self) -> Cost {
        let native = self.format.bytes_per_pixel() as u64 * u64::from(self.width);
        let color = match (self.format.channels, self.format.sixteen) {
            (1, false) => image::ColorType::L8,
            (2, false) => image::ColorType::La8,
            (3, false) => image::ColorType::Rgb8,
            (4, false) => image::ColorType::Rgba8,
            (1, true) => image::ColorType::L16,
            (2, true) => image::ColorType::La16,
            (3, true) => image::ColorType::Rgb16,
            _ => image::ColorType::Rgba16,
        };
        // Every row is inflated and unfiltered, and (at most) every row resized.
        let raw = (native + 1) * u64::from(self.height);
        Cost {
            bytes: row_bytes(color, self.width)
                + native
                + 3 * u64::from(self.width)
                + resize_bytes(self.width, self.height)
                + MIB,
            work: work::ns(
                raw as f64 * work::PNG_PER_RAW_BYTE + work::resize(self.width, self.height),
            ),
            size: (self.width, self.height),
            kind: "PNG",
            instead: "a smaller image",
        }
    }
}

impl RowSource for PngRows<'_> {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn source_size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn run(mut self: Box<Self>, sink: &mut dyn RowSink) -> Result<(), ImageError> {
        let max_dimension = self.max_dimension;
        let convert = |e: png::DecodingError| convert_image_error(from_png(e), max_dimension);
        let line = self
            .reader
            .output_line_size(self.width)
            .ok_or_else(|| convert(png::DecodingError::LimitsExceeded))?;
        let mut native = vec![0u8; line];
        let mut rgb = vec![0u8; self.width as usize * 3];
        // Every row is decoded (a truncated or corrupt file fails as the `image` crate fails it);
        // only the rows the resize reads are converted.
        for y in 0..self.height {
            self.allowance.check()?;
            if self
                .reader
                .read_row(&mut native)
                .map_err(convert)?
                .is_none()
            {
                return Err(ImageError::Corrupt(format!(
                    "the PNG data ended after {y} of {} rows",
                    self.height
                )));
            }
            if sink.wants(y) {
                row_to_rgb8(self.format, &native, &mut rgb);
                sink.put_rgb8(y, &rgb);
            }
        }
        // As `Reader::next_frame` does after the last row: finish the image data.
        self.reader.read_row(&mut native).map_err(convert)?;
        Ok(())
    }
}
