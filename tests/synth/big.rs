//! Large test images made quickly: integer patterns (no floating point per pixel), rows reused,
//! and for the formats that allow it (PNG, TIFF, BMP RLE) written strip by strip, never as a
//! full raster. The largest fit a 6 MiB request body because their content compresses well.
#![allow(dead_code)]

use std::borrow::Cow;

/// An 8-bit sample of channel `c`: diagonal bands, 64 px wide, different per channel.
pub fn value(x: u32, y: u32, c: u32) -> u8 {
    ((x / 64 + y / 64) * (c + 3) * 17 % 256) as u8
}

/// A `w`×`h` raster of `channels` 8-bit channels.
pub fn raster(w: u32, h: u32, channels: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity((w * h * channels) as usize);
    for y in 0..h {
        for x in 0..w {
            for c in 0..channels {
                out.push(value(x, y, c));
            }
        }
    }
    out
}

/// A non-interlaced PNG of any colour type at 8 or 16 bits (palette: 8-bit with tRNS), written
/// row by row; rows only change every 64 lines.
pub fn png(w: u32, h: u32, color: png::ColorType, depth: png::BitDepth) -> Vec<u8> {
    let channels = color.samples() as u32;
    let sixteen = depth == png::BitDepth::Sixteen;
    let row = |y: u32| -> Vec<u8> {
        let mut r = Vec::with_capacity((w * channels * 2) as usize);
        for x in 0..w {
            for c in 0..channels {
                let v = value(x, y, c);
                r.push(v);
                if sixteen {
                    r.push(v ^ 0x33);
                }
            }
        }
        r
    };
    // Rows repeat within each 64-row band: with the Up filter they become zeros, which deflate
    // shrinks ~1000:1, so even 16384² RGBA16 (2 GiB of samples) fits the body limit.
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(color);
        encoder.set_depth(depth);
        encoder.set_compression(png::Compression::Balanced);
        encoder.set_filter(png::Filter::Up);
        if color == png::ColorType::Indexed {
            encoder.set_palette(super::palette256());
            encoder.set_trns(vec![0u8, 128, 255]);
        }
        let mut writer = encoder.write_header().unwrap();
        let mut stream = writer.stream_writer().unwrap();
        let mut current = row(0);
        for y in 0..h {
            if y % 64 == 0 {
                current = row(y);
            }
            std::io::Write::write_all(&mut stream, &current).unwrap();
        }
        stream.finish().unwrap();
    }
    out
}

/// An Adam7-interlaced 8-bit grey PNG (decoded whole, so refused or accepted by the budget).
pub fn png_interlaced_grey(w: u32, h: u32) -> Vec<u8> {
    use std::io::Write;
    const PASSES: [(u32, u32, u32, u32); 7] = [
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ];
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let (mut row, mut previous, mut filtered) = (Vec::new(), Vec::new(), Vec::new());
    for (x0, y0, dx, dy) in PASSES {
        if x0 >= w || y0 >= h {
            continue;
        }
        previous.clear();
        for y in (y0..h).step_by(dy as usize) {
            row.clear();
            row.extend((x0..w).step_by(dx as usize).map(|x| value(x, y, 0)));
            // Filter "Up" (2): rows repeat within a band, so the data is mostly zeros.
            filtered.clear();
            filtered.push(2u8);
            filtered.extend(
                row.iter()
                    .enumerate()
                    .map(|(i, &v)| v.wrapping_sub(previous.get(i).copied().unwrap_or(0))),
            );
            z.write_all(&filtered).unwrap();
            std::mem::swap(&mut row, &mut previous);
        }
    }
    let idat = z.finish().unwrap();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 1]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(super::png_chunk(b"IHDR", &ihdr));
    out.extend(super::png_chunk(b"IDAT", &idat));
    out.extend(super::png_chunk(b"IEND", &[]));
    out
}

/// A GIF whose only frame covers its `w`×`h` screen, optionally interlaced.
pub fn gif(w: u16, h: u16, interlaced: bool) -> Vec<u8> {
    let palette = super::palette256();
    // Each row is one colour (changing every 64 rows): LZW, weak on anything else, then packs
    // ~1000 pixels a byte.
    let mut buffer = Vec::with_capacity(usize::from(w) * usize::from(h));
    for y in 0..u32::from(h) {
        buffer.resize(buffer.len() + usize::from(w), value(0, y, 0));
    }
    let mut out = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut out, w, h, &palette).unwrap();
        let frame = gif::Frame {
            width: w,
            height: h,
            interlaced,
            buffer: Cow::Owned(buffer),
            ..gif::Frame::default()
        };
        encoder.write_frame(&frame).unwrap();
    }
    out
}

/// An RLE8 BMP (~130 bytes a row at any width).
pub fn bmp_rle8(w: u32, h: u32) -> Vec<u8> {
    super::bmp_rle8_with(w, h, |x, y| value(x, y, 0))
}

/// A deflate-compressed TIFF (written by hand: the tiff crate's encoder compresses only images
/// it is given whole): 8-bit RGB, or 16-bit RGBA if `sixteen`, in strips of 64 rows. Every
/// strip holds the same band of the pattern, so all full strips point at one compressed copy.
pub fn tiff(w: u32, h: u32, sixteen: bool) -> Vec<u8> {
    use std::io::Write;
    let rows_per_strip = 64.min(h);
    let (channels, bytes_per_sample) = if sixteen { (4u32, 2u32) } else { (3, 1) };
    let strip = |rows: u32| -> Vec<u8> {
        let mut raw = Vec::with_capacity((w * rows * channels * bytes_per_sample) as usize);
        for y in 0..rows {
            for x in 0..w {
                for c in 0..channels {
                    let v = value(x, y, c);
                    if sixteen {
                        raw.extend_from_slice(&(u16::from(v) * 257).to_le_bytes());
                    } else {
                        raw.push(v);
                    }
                }
            }
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&raw).unwrap();
        z.finish().unwrap()
    };
    let strips = h.div_ceil(rows_per_strip);
    let full = strip(rows_per_strip);
    let last_rows = h - (strips - 1) * rows_per_strip;
    let last = if last_rows == rows_per_strip {
        None
    } else {
        Some(strip(last_rows))
    };
    // Layout: header (8) | full strip | last strip | arrays | IFD.
    let mut out = b"II*\0".to_vec();
    out.extend_from_slice(&0u32.to_le_bytes()); // IFD offset, patched below
    let full_at = out.len() as u32;
    out.extend_from_slice(&full);
    let last_at = out.len() as u32;
    if let Some(l) = &last {
        out.extend_from_slice(l);
    }
    let mut offsets = vec![full_at; strips as usize];
    let mut counts = vec![full.len() as u32; strips as usize];
    if let Some(l) = &last {
        offsets[strips as usize - 1] = last_at;
        counts[strips as usize - 1] = l.len() as u32;
    }
    let array = |out: &mut Vec<u8>, values: &[u32]| -> u32 {
        let at = out.len() as u32;
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
        at
    };
    let offsets_at = array(&mut out, &offsets);
    let counts_at = array(&mut out, &counts);
    let bits_at = out.len() as u32;
    for _ in 0..channels {
        out.extend_from_slice(&((bytes_per_sample * 8) as u16).to_le_bytes());
    }
    let one_or = |n: u32, inline: u32, at: u32| if n == 1 { inline } else { at };
    // (tag, type: 3 SHORT / 4 LONG, count, value or offset)
    let mut entries: Vec<(u16, u16, u32, u32)> = vec![
        (256, 4, 1, w),
        (257, 4, 1, h),
        (258, 3, channels, bits_at),
        (259, 3, 1, 8), // Deflate
        (262, 3, 1, 2), // RGB
        (273, 4, strips, one_or(strips, offsets[0], offsets_at)),
        (277, 3, 1, channels),
        (278, 4, 1, rows_per_strip),
        (279, 4, strips, one_or(strips, counts[0], counts_at)),
        (284, 3, 1, 1), // chunky
    ];
    if channels == 4 {
        entries.push((338, 3, 1, 2)); // unassociated alpha
    }
    if out.len() % 2 == 1 {
        out.push(0);
    }
    let ifd_at = out.len() as u32;
    out[4..8].copy_from_slice(&ifd_at.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, kind, count, value) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        if kind == 3 && count == 1 {
            out.extend_from_slice(&(value as u16).to_le_bytes());
            out.extend_from_slice(&[0, 0]);
        } else {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    out
}

/// A baseline JPEG from `image`'s encoder.
pub fn jpeg_baseline(w: u32, h: u32) -> Vec<u8> {
    let image = image::RgbImage::from_raw(w, h, raster(w, h, 3)).unwrap();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&image)
        .unwrap();
    out
}

/// A progressive 4:2:0 JPEG from jpeg-encoder.
pub fn jpeg_progressive(w: u16, h: u16) -> Vec<u8> {
    let data = raster(u32::from(w), u32::from(h), 3);
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 85);
    encoder.set_progressive(true);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    encoder
        .encode(&data, w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

/// A real JPEG (small) whose frame header is patched to claim `w`×`h`: what a hostile upload
/// of a few KB looks like. `progressive` picks which encoder wrote the original.
pub fn jpeg_claiming(w: u16, h: u16, progressive: bool) -> Vec<u8> {
    let mut jpeg = if progressive {
        jpeg_progressive(64, 48)
    } else {
        jpeg_baseline(64, 48)
    };
    let sof = jpeg
        .windows(2)
        .position(|m| m[0] == 0xFF && (m[1] == 0xC0 || m[1] == 0xC2))
        .unwrap();
    jpeg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    jpeg
}

/// A lossless WebP (image's encoder) of `w`×`h`, RGBA if `alpha`.
pub fn webp(w: u32, h: u32, alpha: bool) -> Vec<u8> {
    let channels = if alpha { 4 } else { 3 };
    let mut out = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .encode(
            &raster(w, h, channels),
            w,
            h,
            if alpha {
                image::ExtendedColorType::Rgba8
            } else {
                image::ExtendedColorType::Rgb8
            },
        )
        .unwrap();
    out
}

/// A small lossless WebP whose VP8L header is patched to claim `w`×`h` (at most 16384 a side).
pub fn webp_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut webp = webp(64, 48, false);
    let at = webp.windows(4).position(|c| c == b"VP8L").unwrap() + 9;
    let mut bits = u32::from_le_bytes(webp[at..at + 4].try_into().unwrap());
    bits = (bits & !0x0FFF_FFFF) | ((w - 1) & 0x3FFF) | (((h - 1) & 0x3FFF) << 14);
    webp[at..at + 4].copy_from_slice(&bits.to_le_bytes());
    webp
}

/// A grey progressive JPEG of `w`×`h` (a flat grey image) followed by `extra` tiny AC scans
/// that code nothing: each is a scan header and a few end-of-band runs (~30 bytes for 1M
/// blocks), yet the decoder walks every block of the image for each one. The "scan bomb"
/// libjpeg-turbo's maintainers document (its issues #252 and #284): 1,000 extra scans of an
/// 8192×8192 image are ~100 KB.
pub fn jpeg_scan_bomb(w: u16, h: u16, extra: usize) -> Vec<u8> {
    scan_bomb(w, h, extra, false)
}

/// [`jpeg_scan_bomb`] whose extra scans are refinement scans of coefficients 1..63, each again
/// refining the same bit (a progression libjpeg warns about and decodes): a refinement scan
/// walks every coefficient of its band in every block, even through an end-of-band run, so
/// each costs several times a first scan.
pub fn jpeg_refine_bomb(w: u16, h: u16, extra: usize) -> Vec<u8> {
    scan_bomb(w, h, extra, true)
}

fn scan_bomb(w: u16, h: u16, extra: usize, refine: bool) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u32,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, value: u32, len: u32) {
            for i in (0..len).rev() {
                self.acc = (self.acc << 1) | ((value >> i) & 1);
                self.n += 1;
                if self.n == 8 {
                    self.out.push(self.acc as u8);
                    if self.acc == 0xFF {
                        self.out.push(0x00); // byte stuffing
                    }
                    self.acc = 0;
                    self.n = 0;
                }
            }
        }
        fn finish(mut self) -> Vec<u8> {
            while self.n != 0 {
                self.put(1, 1); // pad with ones
            }
            self.out
        }
    }
    let segment = |out: &mut Vec<u8>, marker: u8, body: &[u8]| {
        out.extend_from_slice(&[0xFF, marker]);
        out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(body);
    };
    let blocks = u32::from(w).div_ceil(8) * u32::from(h).div_ceil(8);
    let mut out = vec![0xFF, 0xD8];
    segment(&mut out, 0xDB, &[[0u8].as_slice(), &[1u8; 64]].concat()); // DQT 0, all ones
    let mut sof = vec![8];
    sof.extend_from_slice(&h.to_be_bytes());
    sof.extend_from_slice(&w.to_be_bytes());
    sof.extend_from_slice(&[1, 1, 0x11, 0]); // one component, 1×1 sampling, table 0
    segment(&mut out, 0xC2, &sof); // progressive

    // DC table 0: one code, "0" → category 0 (no change). AC table 0: EOBn (n = 0..14, symbol
    // n << 4) as 4-bit codes 0000…1110.
    let mut dht = vec![0x00, 1];
    dht.extend_from_slice(&[0; 15]);
    dht.push(0x00);
    dht.extend_from_slice(&[0x10, 0, 0, 0, 15]);
    dht.extend_from_slice(&[0; 12]);
    dht.extend((0..15u8).map(|n| n << 4));
    segment(&mut out, 0xC4, &dht);
    // The DC scan: every block's DC difference is 0.
    segment(&mut out, 0xDA, &[1, 1, 0x00, 0, 0, 0x00]);
    let mut bits = Bits {
        out: vec![],
        acc: 0,
        n: 0,
    };
    for _ in 0..blocks {
        bits.put(0, 1);
    }
    out.extend(bits.finish());
    // The extra scans: AC coefficients 1..63, all zero, as end-of-band runs; a first pass
    // (successive approximation bit 0), or a first pass of bit 1 then refinements of bit 0.
    for scan in 0..extra {
        let approximation = match (refine, scan) {
            (false, _) => 0x00,
            (true, 0) => 0x01,
            (true, _) => 0x10,
        };
        segment(&mut out, 0xDA, &[1, 1, 0x00, 1, 63, approximation]);
        let mut bits = Bits {
            out: vec![],
            acc: 0,
            n: 0,
        };
        let mut left = blocks;
        while left > 0 {
            let run = left.min(32_767);
            let n = 31 - run.leading_zeros(); // run = 2^n + extra bits
            bits.put(n, 4);
            bits.put(run - (1 << n), n);
            left -= run;
        }
        out.extend(bits.finish());
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}
