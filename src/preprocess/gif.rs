//! GIF as a stream of rows: the first frame is decoded one row at a time by the gif crate (the
//! version and RGBA output the `image` crate uses) and placed on the logical screen as `image`
//! places it (outside the frame: transparent black, so black once alpha is dropped; a frame row
//! or column beyond the screen is decoded and dropped). Interlaced frames deliver their rows in
//! pass order, which the resize accepts. Nothing of the size of the screen is ever allocated.

use image::error::DecodingError;
use image::ImageFormat;

use super::allowance::Allowance;
use super::budget::{work, Cost, MIB};
use super::error::{convert_image_error, ImageError};
use super::options::{image_limits, DecodeOptions};
use super::reader::UploadReader;
use super::resize::{resize_bytes, RowSink, RowSource};

/// The `image` crate's mapping of gif errors, so that a streamed GIF fails with the message the
/// `image` crate gives for the same file.
fn from_gif(err: gif::DecodingError) -> image::ImageError {
    match err {
        gif::DecodingError::Io(e) => image::ImageError::IoError(e),
        other => image::ImageError::Decoding(DecodingError::new(ImageFormat::Gif.into(), other)),
    }
}

/// The first frame of a GIF being decoded row by row.
pub struct GifRows<'a> {
    decoder: gif::Decoder<UploadReader<'a>>,
    allowance: Allowance,
    /// The logical screen.
    width: u32,
    height: u32,
    /// The first frame's rectangle on it.
    left: u32,
    top: u32,
    frame_width: u32,
    frame_height: u32,
    interlaced: bool,
    max_dimension: u32,
}

/// Reads a GIF's header and first frame descriptor; `None` leaves the file to the whole-image
/// decoder (no frame, an empty screen or frame), which reports its errors itself.
pub fn open<'a>(
    bytes: &'a [u8],
    options: DecodeOptions,
    allowance: &Allowance,
) -> Result<Option<GifRows<'a>>, ImageError> {
    let convert = |e: gif::DecodingError| convert_image_error(from_gif(e), options.max_dimension);
    let mut gif_options = gif::DecodeOptions::new();
    gif_options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = gif_options
        .read_info(UploadReader::new(bytes, allowance))
        .map_err(convert)?;
    let (width, height) = (u32::from(decoder.width()), u32::from(decoder.height()));
    image_limits(options)
        .check_dimensions(width, height)
        .map_err(|e| convert_image_error(e, options.max_dimension))?;
    if width == 0 || height == 0 {
        return Ok(None);
    }
    let Some(frame) = decoder.next_frame_info().map_err(convert)? else {
        return Ok(None);
    };
    let (left, top) = (u32::from(frame.left), u32::from(frame.top));
    let (frame_width, frame_height) = (u32::from(frame.width), u32::from(frame.height));
    let interlaced = frame.interlaced;
    if frame_width == 0 || frame_height == 0 {
        return Ok(None);
    }
    let rows = GifRows {
        decoder,
        allowance: allowance.clone(),
        width,
        height,
        left,
        top,
        frame_width,
        frame_height,
        interlaced,
        max_dimension: options.max_dimension,
    };
    Ok(Some(rows))
}

impl GifRows<'_> {
    /// What streaming this GIF allocates: one RGBA frame row and the decoder's index row, one
    /// RGB8 screen row, the LZW state, the resize.
    pub fn cost(&self) -> Cost {
        Cost {
            bytes: 5 * u64::from(self.frame_width)
                + 3 * u64::from(self.width)
                + resize_bytes(self.width, self.height)
                + MIB,
            work: work::ns(
                u64::from(self.frame_width) as f64
                    * u64::from(self.frame_height) as f64
                    * work::GIF_PER_PIXEL
                    + work::resize(self.width, self.height),
            ),
            size: (self.width, self.height),
            kind: "GIF",
            instead: "a smaller image",
        }
    }

    /// The frame row stored `i`-th.
    fn frame_row(&self, i: u32) -> u32 {
        if self.interlaced {
            interlaced_row(self.frame_height, i)
        } else {
            i
        }
    }
}

/// The row of a `height`-row interlaced frame stored `i`-th: GIF's four passes (0, 8, 16…;
/// 4, 12…; 2, 6…; 1, 3…), as the gif crate's `InterlaceIterator` orders them.
fn interlaced_row(height: u32, i: u32) -> u32 {
    let mut i = i;
    for (first, step) in [(0, 8), (4, 8), (2, 4), (1, 2)] {
        let count = if first < height {
            (height - first).div_ceil(step)
        } else {
            0
        };
        if i < count {
            return first + i * step;
        }
        i -= count;
    }
    height // past the last row; callers pass i < height
}

impl RowSource for GifRows<'_> {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn source_size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn run(mut self: Box<Self>, sink: &mut dyn RowSink) -> Result<(), ImageError> {
        let max_dimension = self.max_dimension;
        let convert = |e: gif::DecodingError| convert_image_error(from_gif(e), max_dimension);
        let mut frame_row = vec![0u8; self.frame_width as usize * 4];
        let mut rgb = vec![0u8; self.width as usize * 3];
        // Screen rows the frame does not cover are black.
        let frame_rows = self.top..self.top.saturating_add(self.frame_height);
        for y in (0..self.height).filter(|y| !frame_rows.contains(y)) {
            if sink.wants(y) {
                sink.put_rgb8(y, &rgb);
            }
        }
        for i in 0..self.frame_height {
            self.allowance.check()?;
            // Pixels whose index is outside the palette are left as they were: zero, as in the
            // zeroed buffer `image` decodes into.
            frame_row.fill(0);
            if !self.decoder.fill_buffer(&mut frame_row).map_err(convert)? {
                return Err(ImageError::Corrupt(format!(
                    "the GIF frame data ended after {i} of {} rows",
                    self.frame_height
                )));
            }
            let y = self.top + self.frame_row(i);
            if y >= self.height || !sink.wants(y) {
                continue;
            }
            rgb.fill(0);
            let left = (self.left as usize).min(self.width as usize);
            for (out, px) in rgb[left * 3..]
                .chunks_exact_mut(3)
                .zip(frame_row.chunks_exact(4))
            {
                out.copy_from_slice(&px[..3]);
            }
            sink.put_rgb8(y, &rgb);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::interlaced_row;

    /// The interlace order, checked against the gif crate's own test table.
    #[test]
    fn interlace_order_matches_the_gif_crate() {
        let expected: [(u32, &[u32]); 6] = [
            (1, &[0]),
            (2, &[0, 1]),
            (3, &[0, 2, 1]),
            (5, &[0, 4, 2, 1, 3]),
            (9, &[0, 8, 4, 2, 6, 1, 3, 5, 7]),
            (
                17,
                &[0, 8, 16, 4, 12, 2, 6, 10, 14, 1, 3, 5, 7, 9, 11, 13, 15],
            ),
        ];
        for (h, order) in expected {
            let rows: Vec<u32> = (0..h).map(|i| interlaced_row(h, i)).collect();
            assert_eq!(rows, order, "height {h}");
        }
    }
}
