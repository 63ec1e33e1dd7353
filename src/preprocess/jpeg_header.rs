//! JPEG headers: what the frame header (SOF) and first scan header (SOS) say, how many scans the
//! stream holds and how many blocks they visit, what a whole decode by the `image` crate
//! (zune-jpeg) costs, and whether the file is complete.
//!
//! Grey and colour JPEGs are decoded row by row by libjpeg-turbo (`libjpeg.rs`); CMYK/YCCK and
//! whatever libjpeg will not read stay whole decodes by zune-jpeg under the budget (`whole.rs`).

use super::budget::{work, Cost, MIB};
use super::resize::resize_bytes;

/// What the frame header (SOF) and the first scan header (SOS) say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpegHeader {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// (horizontal, vertical) sampling factors per component.
    pub sampling: Vec<(u32, u32)>,
    /// The components' identifiers, in the frame header's order (scans name components by them).
    pub ids: Vec<u8>,
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
                    let ids = (0..components)
                        .map(|i| segment.get(6 + 3 * i).copied())
                        .collect::<Option<Vec<_>>>()?;
                    frame = Some(JpegHeader {
                        height: u32::from(u16::from_be_bytes([*segment.get(1)?, *segment.get(2)?])),
                        width: u32::from(u16::from_be_bytes([*segment.get(3)?, *segment.get(4)?])),
                        sampling,
                        ids,
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
    pub(super) fn mcus(&self) -> (u64, u64, u64, u64) {
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
    pub(super) fn blocks(&self) -> u64 {
        let (_, _, mcu_x, mcu_y) = self.mcus();
        self.sampling
            .iter()
            .map(|&(h, v)| mcu_x * u64::from(h) * mcu_y * u64::from(v))
            .sum()
    }

    /// Blocks of component `i`, padded to whole MCUs.
    fn component_blocks(&self, i: usize) -> u64 {
        let (_, _, mcu_x, mcu_y) = self.mcus();
        let (h, v) = self.sampling[i];
        mcu_x * u64::from(h) * mcu_y * u64::from(v)
    }

    /// The scans of the stream and the blocks they visit: a decoder walks every block of each
    /// component a scan names (even a scan that carries almost nothing, as a "scan bomb"'s
    /// thousand tiny scans do), so this, not the file's size, is what its entropy decoding
    /// costs. Scan headers are found by walking the markers: inside entropy-coded data every
    /// 0xFF is followed by 0x00 or a restart marker, so no scan header can hide there. A stream
    /// that breaks off counts the scans seen so far.
    pub fn scans(&self, bytes: &[u8]) -> Scans {
        let mut scans = Scans::default();
        let mut at = 2;
        let byte = |i: usize| bytes.get(i).copied();
        while let (Some(0xFF), Some(marker)) = (byte(at), byte(at + 1)) {
            at += 2;
            match marker {
                0xFF => at -= 1,
                0x01 | 0xD0..=0xD7 => {}
                0xD9 => break,
                _ => {
                    let (Some(hi), Some(lo)) = (byte(at), byte(at + 1)) else {
                        break;
                    };
                    let len = usize::from(u16::from_be_bytes([hi, lo]));
                    if marker == 0xDA {
                        let named = usize::from(byte(at + 2).unwrap_or(0));
                        let band = at + 3 + 2 * named;
                        // A refinement (Ah ≠ 0) walks its band, Ss..=Se, in every block.
                        let refined = match (byte(band), byte(band + 1), byte(band + 2)) {
                            (Some(ss), Some(se), Some(a)) if a >> 4 != 0 => {
                                u64::from(se.saturating_sub(ss)) + 1
                            }
                            _ => 0,
                        };
                        scans.count += 1;
                        for c in 0..named {
                            let id = byte(at + 3 + 2 * c);
                            if let Some(i) = self.ids.iter().position(|&x| Some(x) == id) {
                                scans.block_visits += self.component_blocks(i);
                                scans.refined_coefficients += self.component_blocks(i) * refined;
                            }
                        }
                        at += len;
                        // Entropy-coded data up to the next marker that is not a restart.
                        while let Some(skip) = bytes
                            .get(at..)
                            .and_then(|b| b.iter().position(|&x| x == 0xFF))
                        {
                            at += skip;
                            match byte(at + 1) {
                                Some(0x00 | 0xD0..=0xD7) => at += 2,
                                Some(0xFF) => at += 1,
                                _ => break,
                            }
                        }
                        continue;
                    }
                    at += len;
                }
            }
        }
        scans
    }

    /// Whether a decoder must keep every coefficient of the image until the end.
    pub(super) fn holds_coefficients(&self) -> bool {
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

/// What a stream's scans ask of the decoder ([`JpegHeader::scans`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scans {
    /// Scan headers (SOS) in the stream.
    pub count: u64,
    /// Blocks visited over all scans: each scan's components' blocks.
    pub block_visits: u64,
    /// Coefficients walked by refinement scans: each one's components' blocks times the
    /// length of its band (libjpeg walks the band even through an end-of-band run).
    pub refined_coefficients: u64,
}

/// A header for a JPEG whose markers did not parse: the most expensive layout of its size (four
/// full-resolution components, progressive), so the budget errs on the safe side; the decoder
/// will most likely refuse the file anyway.
fn worst_case(width: u32, height: u32) -> JpegHeader {
    JpegHeader {
        width,
        height,
        sampling: vec![(1, 1); 4],
        ids: vec![1, 2, 3, 4],
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
    let scans = header.scans(bytes);
    let visits = scans.block_visits.max(header.blocks());
    Cost {
        // zune-jpeg walks a refinement scan's band as libjpeg does; libjpeg's figure stands in.
        work: work::ns(
            (visits + header.blocks()) as f64 * work::ZUNE_PER_BLOCK_VISIT
                + scans.refined_coefficients as f64 * work::JPEG_PER_REFINED_COEFFICIENT
                + work::resize(width, height),
        ),
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
