//! JPEG: what a decode costs (from the frame and first scan headers), and the DCT-scaled decode
//! of large JPEGs with jpeg-decoder.
//!
//! Neither JPEG decoder here hands out rows: both return the whole (possibly DCT-scaled) image,
//! so JPEGs are decoded whole under the budget and their rows then go to the resize. A decoder
//! that produces rows (e.g. libjpeg-turbo's `jpeg_read_scanlines`) would become a row source
//! like `png.rs` without touching anything else.

use jpeg_decoder::{Decoder, PixelFormat};

use super::budget::{Cost, MIB};
use super::resize::resize_bytes;
use super::whole::Whole;
use super::{DecodeOptions, ImageError, DCT_SCALED_SIDE};

/// What the frame header (SOF) and the first scan header (SOS) say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpegHeader {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// (horizontal, vertical) sampling factors per component.
    pub sampling: Vec<(u32, u32)>,
    /// Progressive coding (SOF2/6/10/14): every coefficient is held until the last scan.
    pub progressive: bool,
    /// Components in the first scan; fewer than all means the baseline decoder (zune-jpeg) also
    /// keeps every coefficient until the other scans arrive.
    pub first_scan_components: usize,
}

impl JpegHeader {
    /// Parses the markers up to the first scan. `None` if they are malformed.
    pub fn parse(bytes: &[u8]) -> Option<JpegHeader> {
        if !bytes.starts_with(&[0xFF, 0xD8]) {
            return None;
        }
        let mut at = 2;
        let mut frame: Option<JpegHeader> = None;
        loop {
            // Skip fill bytes before the marker code.
            while *bytes.get(at)? == 0xFF && *bytes.get(at + 1)? == 0xFF {
                at += 1;
            }
            if *bytes.get(at)? != 0xFF {
                return None;
            }
            let marker = *bytes.get(at + 1)?;
            at += 2;
            if marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
                continue; // no length
            }
            let len = usize::from(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
            let segment = bytes.get(at + 2..at.checked_add(len)?)?;
            match marker {
                0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                    let components = usize::from(*segment.get(5)?);
                    let sampling = (0..components)
                        .map(|i| {
                            let hv = *segment.get(6 + 3 * i + 1)?;
                            Some((u32::from(hv >> 4).max(1), u32::from(hv & 15).max(1)))
                        })
                        .collect::<Option<Vec<_>>>()?;
                    frame = Some(JpegHeader {
                        height: u32::from(u16::from_be_bytes([*segment.get(1)?, *segment.get(2)?])),
                        width: u32::from(u16::from_be_bytes([*segment.get(3)?, *segment.get(4)?])),
                        sampling,
                        progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
                        first_scan_components: 0,
                    });
                }
                0xDA => {
                    let mut frame = frame?;
                    frame.first_scan_components = usize::from(*segment.first()?);
                    return Some(frame);
                }
                0xD9 => return None,
                _ => {}
            }
            at += len;
        }
    }

    /// Components and the MCU grid: (max h, max v, MCUs across, MCUs down).
    fn mcus(&self) -> (u64, u64, u64, u64) {
        let hmax = u64::from(self.sampling.iter().map(|s| s.0).max().unwrap_or(1));
        let vmax = u64::from(self.sampling.iter().map(|s| s.1).max().unwrap_or(1));
        (
            hmax,
            vmax,
            u64::from(self.width).div_ceil(8 * hmax),
            u64::from(self.height).div_ceil(8 * vmax),
        )
    }

    /// 8×8 blocks of every component, padded to whole MCUs, as both decoders allocate them.
    fn blocks(&self) -> u64 {
        let (_, _, mcu_x, mcu_y) = self.mcus();
        self.sampling
            .iter()
            .map(|&(h, v)| mcu_x * u64::from(h) * mcu_y * u64::from(v))
            .sum()
    }

    /// Whether a decoder must keep every coefficient of the image until the end.
    fn holds_coefficients(&self) -> bool {
        self.progressive || self.first_scan_components < self.sampling.len()
    }

    fn kind(&self) -> &'static str {
        if self.progressive {
            "progressive JPEG"
        } else {
            "JPEG"
        }
    }
}

/// A header for a JPEG whose markers did not parse: the most expensive layout of its size (four
/// full-resolution components, progressive), so the budget errs on the safe side; the decoder
/// will most likely refuse the file anyway.
fn worst_case(width: u32, height: u32) -> JpegHeader {
    JpegHeader {
        width,
        height,
        sampling: vec![(1, 1); 4],
        progressive: true,
        first_scan_components: 1,
    }
}

/// What decoding with the `image` crate (zune-jpeg) allocates: a copy of the file, the output
/// buffer (`out_bytes`), every coefficient if the image is progressive or its components come in
/// separate scans (2 bytes each), and per-component buffers for one MCU row.
pub fn zune_cost(bytes: &[u8], width: u32, height: u32, out_bytes: u64) -> Cost {
    let header = JpegHeader::parse(bytes)
        .filter(|h| (h.width, h.height) == (width, height))
        .unwrap_or_else(|| worst_case(width, height));
    let (hmax, vmax, mcu_x, _) = header.mcus();
    let coefficients = if header.holds_coefficients() {
        header.blocks() * 64 * 2
    } else {
        0
    };
    let mcu_row = header.sampling.len() as u64 * mcu_x * 8 * hmax * vmax * 8 * 16;
    Cost {
        bytes: bytes.len() as u64
            + out_bytes
            + coefficients
            + mcu_row
            + resize_bytes(width, height)
            + MIB,
        size: (width, height),
        kind: header.kind(),
        instead: "a smaller baseline JPEG, or a non-interlaced PNG, which is decoded row by row",
    }
}

/// What jpeg-decoder allocates for a decode at `scale`/8 of the size giving `out_w`×`out_h` with
/// `channels` channels: each component's plane at the reduced size, the output, and the
/// coefficients. For images above 128×128 it hands each MCU row's coefficients to one thread per
/// component through an unbounded channel, so on a starved CPU every row of the image can be in
/// flight at once (2 bytes a coefficient, full size); a progressive image also keeps all of them
/// until its last scan, and sends copies.
fn scaled_cost(header: &JpegHeader, scale: u64, out_w: u32, out_h: u32, channels: u64) -> Cost {
    let (_, vmax, mcu_x, _) = header.mcus();
    let blocks = header.blocks();
    let coefficients = blocks * 64 * 2 * if header.progressive { 2 } else { 1 };
    let planes = blocks * scale * scale;
    let output = u64::from(out_w) * u64::from(out_h) * channels;
    let mcu_rows = header.sampling.len() as u64 * mcu_x * 8 * vmax * 64 * 2 * 2;
    Cost {
        bytes: coefficients + planes + output + mcu_rows + resize_bytes(out_w, out_h) + MIB,
        size: (header.width, header.height),
        kind: header.kind(),
        instead: "a baseline JPEG, which is decoded at a reduced scale",
    }
}

/// Whether a JPEG's last scan (SOS marker) is followed by an end-of-image marker. The decoder
/// would fill a truncated image with grey and answer anyway; PIL refuses it, and so do we.
/// (0xFF bytes inside scan data are always stuffed, so the marker pair cannot occur by chance.)
pub fn is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes
        .windows(2)
        .rposition(|w| w == [0xFF, 0xDA])
        .unwrap_or(0);
    bytes[last_scan..].windows(2).any(|w| w == [0xFF, 0xD9])
}

/// A large 8-bit grey or RGB JPEG set up for decoding at a reduced DCT scale.
pub struct ScaledJpeg<'a> {
    decoder: Decoder<&'a [u8]>,
    grey: bool,
    out_size: (u32, u32),
    source_size: (u32, u32),
    /// What the decode will allocate.
    pub cost: Cost,
}

/// Reads a JPEG's header and, if it is large enough to gain from DCT scaling and in a mode that
/// path handles (8-bit grey or RGB), sets the scale. `None` leaves it to the full decoder (CMYK,
/// 16-bit, small images).
pub fn plan_scaled(
    bytes: &[u8],
    options: DecodeOptions,
) -> Result<Option<ScaledJpeg<'_>>, ImageError> {
    let corrupt = |e: jpeg_decoder::Error| ImageError::Corrupt(e.to_string());
    let mut decoder = Decoder::new(bytes);
    decoder.read_info().map_err(corrupt)?;
    let Some(info) = decoder.info() else {
        return Ok(None);
    };
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    if width > options.max_dimension || height > options.max_dimension {
        return Err(ImageError::TooLarge {
            reason: format!("{width}x{height} pixels"),
            instead: super::dimension_advice(options.max_dimension),
        });
    }
    let short = width.min(height);
    if short < 2 * DCT_SCALED_SIDE
        || !matches!(info.pixel_format, PixelFormat::L8 | PixelFormat::RGB24)
    {
        return Ok(None);
    }
    // The decoder picks the smallest 1/8..8/8 scale whose output is at least this size.
    let request = |side: u32| {
        (u64::from(side) * u64::from(DCT_SCALED_SIDE)).div_ceil(u64::from(short)) as u16
    };
    let (out_w, out_h) = decoder
        .scale(request(width), request(height))
        .map_err(corrupt)?;
    let (out_w, out_h) = (u32::from(out_w), u32::from(out_h));
    let scale = [1u64, 2, 4, 8]
        .into_iter()
        .find(|&s| (u64::from(width) * s).div_ceil(8) >= u64::from(out_w))
        .unwrap_or(8);
    let grey = info.pixel_format == PixelFormat::L8;
    let header = JpegHeader::parse(bytes)
        .filter(|h| (h.width, h.height) == (width, height))
        .unwrap_or_else(|| worst_case(width, height));
    let cost = scaled_cost(&header, scale, out_w, out_h, if grey { 1 } else { 3 });
    Ok(Some(ScaledJpeg {
        decoder,
        grey,
        out_size: (out_w, out_h),
        source_size: (width, height),
        cost,
    }))
}

impl ScaledJpeg<'_> {
    /// Decodes (the caller has checked the cost against the budget).
    pub fn decode(mut self) -> Result<Whole, ImageError> {
        let pixels = self
            .decoder
            .decode()
            .map_err(|e| ImageError::Corrupt(e.to_string()))?;
        let (out_w, out_h) = self.out_size;
        let image = if self.grey {
            image::GrayImage::from_raw(out_w, out_h, pixels).map(image::DynamicImage::ImageLuma8)
        } else {
            image::RgbImage::from_raw(out_w, out_h, pixels).map(image::DynamicImage::ImageRgb8)
        };
        match image {
            Some(image) => Ok(Whole::new(image, self.source_size)),
            None => Err(ImageError::Corrupt(
                "the JPEG decoder returned fewer pixels than its header promised".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_baseline_and_progressive_files() {
        let mut jpeg = Vec::new();
        let image = image::RgbImage::from_pixel(40, 24, image::Rgb([1, 2, 3]));
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
            .encode_image(&image)
            .unwrap();
        let h = JpegHeader::parse(&jpeg).unwrap();
        assert_eq!((h.width, h.height), (40, 24));
        assert!(!h.progressive && !h.holds_coefficients());
        assert_eq!(h.sampling.len(), 3);
        assert_eq!(h.first_scan_components, 3);
        let progressive = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/progressive.jpg"),
        )
        .unwrap();
        let h = JpegHeader::parse(&progressive).unwrap();
        assert!(h.progressive && h.holds_coefficients());
    }

    #[test]
    fn garbage_headers_do_not_panic() {
        for bytes in [
            &b""[..],
            b"\xFF\xD8",
            b"\xFF\xD8\xFF",
            b"\xFF\xD8\xFF\xC0\x00",
            b"\xFF\xD8\xFF\xC0\x00\x02",
            b"\xFF\xD8\xFF\xC0\xFF\xFF\x08",
            b"\xFF\xD8\xFF\xDA\x00\x03\x01",
            b"\xFF\xD8\xFF\xC2\x00\x0B\x08\x00\x10\x00\x10\x01\x01\x11\x00\xFF\xDA\x00\x03\x01",
        ] {
            let _ = JpegHeader::parse(bytes);
        }
        let h = JpegHeader::parse(
            b"\xFF\xD8\xFF\xC2\x00\x0B\x08\x00\x10\x00\x20\x01\x01\x11\x00\xFF\xDA\x00\x03\x01",
        )
        .unwrap();
        assert_eq!((h.width, h.height, h.progressive), (32, 16, true));
    }
}
