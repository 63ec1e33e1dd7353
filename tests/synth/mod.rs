//! Synthetic test images, generated deterministically at test time (no committed binaries): every
//! colour mode and layout the decoders distinguish, in every format the service accepts.
//!
//! The pixel pattern is photo-like (smooth gradients, edges, fine noise) so that the resampling
//! arithmetic sees every kind of input, and 16-bit samples use all 16 bits, so that the rounding
//! rule of the 16 → 8-bit conversion matters.
#![allow(dead_code)]

pub mod big;
pub mod worst;

use std::borrow::Cow;
use std::io::{Cursor, Write};

use image::{DynamicImage, ImageBuffer, ImageFormat};

/// A cheap, deterministic hash of a pixel position (xorshift-multiply).
pub fn hash(x: u32, y: u32, salt: u32) -> u32 {
    let mut h = x
        .wrapping_mul(0x9E37_79B1)
        .wrapping_add(y.wrapping_mul(0x85EB_CA77))
        .wrapping_add(salt.wrapping_mul(0xC2B2_AE3D));
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297A_2D39);
    h ^ (h >> 15)
}

/// A 16-bit sample of channel `c` at (x, y) in a `w`×`h` image: gradients, a disc, stripes and
/// noise in the low bits.
pub fn sample16(x: u32, y: u32, w: u32, h: u32, c: u32) -> u16 {
    let fx = f64::from(x) / f64::from(w.max(1));
    let fy = f64::from(y) / f64::from(h.max(1));
    let (dx, dy) = (fx - 0.55, fy - 0.45);
    let disc = if dx * dx + dy * dy < 0.06 { 0.35 } else { 0.0 };
    let stripes = 0.08 * ((fx * 37.0 + f64::from(c) * 1.7).sin() * (fy * 23.0).cos());
    let base = match c {
        0 => 0.15 + 0.6 * fx,
        1 => 0.25 + 0.5 * fy,
        2 => 0.7 - 0.4 * fx * fy,
        _ => 0.5 + 0.45 * (fx * 9.0).sin() * (fy * 7.0).cos(),
    };
    let v = (base + disc + stripes).clamp(0.0, 1.0) * 62_000.0;
    let noise = hash(x, y, c) % 3_500;
    (v as u32 + noise).min(65_535) as u16
}

/// The 8-bit version of [`sample16`] (its high byte).
pub fn sample8(x: u32, y: u32, w: u32, h: u32, c: u32) -> u8 {
    (sample16(x, y, w, h, c) >> 8) as u8
}

/// A `w`×`h` image of `channels` 8-bit channels (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA).
pub fn raster8(w: u32, h: u32, channels: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity((w * h * channels) as usize);
    for y in 0..h {
        for x in 0..w {
            for c in 0..channels {
                out.push(sample8(x, y, w, h, c));
            }
        }
    }
    out
}

/// Like [`raster8`] with 16-bit samples.
pub fn raster16(w: u32, h: u32, channels: u32) -> Vec<u16> {
    let mut out = Vec::with_capacity((w * h * channels) as usize);
    for y in 0..h {
        for x in 0..w {
            for c in 0..channels {
                out.push(sample16(x, y, w, h, c));
            }
        }
    }
    out
}

/// An 8-bit DynamicImage of the pattern with 1-4 channels.
pub fn dynamic8(w: u32, h: u32, channels: u32) -> DynamicImage {
    let data = raster8(w, h, channels);
    match channels {
        1 => DynamicImage::ImageLuma8(ImageBuffer::from_raw(w, h, data).unwrap()),
        2 => DynamicImage::ImageLumaA8(ImageBuffer::from_raw(w, h, data).unwrap()),
        3 => DynamicImage::ImageRgb8(ImageBuffer::from_raw(w, h, data).unwrap()),
        _ => DynamicImage::ImageRgba8(ImageBuffer::from_raw(w, h, data).unwrap()),
    }
}

/// A 16-bit DynamicImage of the pattern with 1-4 channels.
pub fn dynamic16(w: u32, h: u32, channels: u32) -> DynamicImage {
    let data = raster16(w, h, channels);
    match channels {
        1 => DynamicImage::ImageLuma16(ImageBuffer::from_raw(w, h, data).unwrap()),
        2 => DynamicImage::ImageLumaA16(ImageBuffer::from_raw(w, h, data).unwrap()),
        3 => DynamicImage::ImageRgb16(ImageBuffer::from_raw(w, h, data).unwrap()),
        _ => DynamicImage::ImageRgba16(ImageBuffer::from_raw(w, h, data).unwrap()),
    }
}

/// Encodes with the `image` crate's encoder for `format`.
pub fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A PNG written with the png crate: any colour type and bit depth, optional palette and tRNS.
/// `rows` yields each row's packed bytes (big-endian for 16-bit).
pub fn png(
    w: u32,
    h: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    palette: Option<Vec<u8>>,
    trns: Option<Vec<u8>>,
    mut row: impl FnMut(u32) -> Vec<u8>,
) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(color);
        encoder.set_depth(depth);
        encoder.set_compression(png::Compression::Fast);
        if let Some(p) = palette {
            encoder.set_palette(p);
        }
        if let Some(t) = trns {
            encoder.set_trns(t);
        }
        let mut writer = encoder.write_header().unwrap();
        let mut stream = writer.stream_writer().unwrap();
        for y in 0..h {
            stream.write_all(&row(y)).unwrap();
        }
        stream.finish().unwrap();
    }
    out
}

/// Packs `w` samples of `bits` bits (1, 2 or 4) into bytes, most significant first, as PNG does.
pub fn pack_bits(samples: impl Iterator<Item = u8>, bits: u8) -> Vec<u8> {
    let per_byte = 8 / bits;
    let mut out = Vec::new();
    let mut byte = 0u8;
    let mut n = 0;
    for s in samples {
        byte |= (s & ((1 << bits) - 1)) << (8 - bits * (n + 1));
        n += 1;
        if n == per_byte {
            out.push(byte);
            byte = 0;
            n = 0;
        }
    }
    if n > 0 {
        out.push(byte);
    }
    out
}

/// A PNG chunk: length, type, data, CRC.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
    out
}

/// A zlib stream of stored (uncompressed) deflate blocks: the same bytes whichever deflate
/// implementation the build links (flate2's backend changes with the features other crates ask
/// for), so the test images, and their recorded digests, do not depend on it.
pub fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = if data.is_empty() {
        vec![&[][..]]
    } else {
        data.chunks(0xFFFF).collect()
    };
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

/// An Adam7-interlaced PNG (the png crate's encoder writes none). `pixel(x, y)` gives one pixel's
/// bytes (for bit depths below 8: one sample per pixel, packed here). Filter type 0 throughout.
pub fn png_interlaced(
    w: u32,
    h: u32,
    color_type: u8,
    depth: u8,
    palette: Option<&[u8]>,
    trns: Option<&[u8]>,
    pixel: impl Fn(u32, u32) -> Vec<u8>,
) -> Vec<u8> {
    // (x0, y0, dx, dy) of the seven passes.
    const PASSES: [(u32, u32, u32, u32); 7] = [
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ];
    let mut raw = Vec::new();
    for (x0, y0, dx, dy) in PASSES {
        if x0 >= w || y0 >= h {
            continue;
        }
        for y in (y0..h).step_by(dy as usize) {
            raw.push(0u8); // filter: none
            let xs = (x0..w).step_by(dx as usize);
            if depth < 8 {
                raw.extend(pack_bits(xs.map(|x| pixel(x, y)[0]), depth));
            } else {
                for x in xs {
                    raw.extend(pixel(x, y));
                }
            }
        }
    }
    let idat = zlib_stored(&raw);
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[depth, color_type, 0, 0, 1]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(png_chunk(b"IHDR", &ihdr));
    if let Some(p) = palette {
        out.extend(png_chunk(b"PLTE", p));
    }
    if let Some(t) = trns {
        out.extend(png_chunk(b"tRNS", t));
    }
    out.extend(png_chunk(b"IDAT", &idat));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

/// A 256-colour palette (RGB triples) covering the pattern's range.
pub fn palette256() -> Vec<u8> {
    (0..256u32)
        .flat_map(|i| {
            [
                (i * 7 % 256) as u8,
                (255 - i) as u8,
                ((i * 13 + 40) % 256) as u8,
            ]
        })
        .collect()
}

/// Palette index of the pattern at (x, y).
pub fn index8(x: u32, y: u32, w: u32, h: u32) -> u8 {
    sample8(x, y, w, h, 0) ^ (sample8(x, y, w, h, 1) >> 3)
}

/// A GIF written with the gif crate: a `screen_w`×`screen_h` canvas whose first frame is
/// `w`×`h` at (`left`, `top`), optionally interlaced, optionally with a transparent index, then
/// (if `second_frame`) a second full-canvas frame that must be ignored.
#[allow(clippy::too_many_arguments)]
pub fn gif(
    screen_w: u16,
    screen_h: u16,
    left: u16,
    top: u16,
    w: u16,
    h: u16,
    interlaced: bool,
    transparent: Option<u8>,
    second_frame: bool,
) -> Vec<u8> {
    let palette = palette256();
    let mut out = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut out, screen_w, screen_h, &palette).unwrap();
        let rows: Vec<Vec<u8>> = (0..u32::from(h))
            .map(|y| {
                (0..u32::from(w))
                    .map(|x| index8(x, y, u32::from(w), u32::from(h)))
                    .collect()
            })
            .collect();
        // An interlaced frame stores its rows in pass order (0, 8, 16…, 4, 12…, 2, 6…, 1, 3…).
        let order: Vec<usize> = if interlaced {
            let h = usize::from(h);
            (0..h)
                .step_by(8)
                .chain((4..h).step_by(8))
                .chain((2..h).step_by(4))
                .chain((1..h).step_by(2))
                .collect()
        } else {
            (0..usize::from(h)).collect()
        };
        let buffer: Vec<u8> = order.iter().flat_map(|&r| rows[r].clone()).collect();
        let frame = gif::Frame {
            left,
            top,
            width: w,
            height: h,
            interlaced,
            transparent,
            buffer: Cow::Owned(buffer),
            ..gif::Frame::default()
        };
        encoder.write_frame(&frame).unwrap();
        if second_frame {
            let frame = gif::Frame {
                width: screen_w,
                height: screen_h,
                buffer: Cow::Owned(vec![7; usize::from(screen_w) * usize::from(screen_h)]),
                ..gif::Frame::default()
            };
            encoder.write_frame(&frame).unwrap();
        }
    }
    out
}

/// A JPEG written with jpeg-encoder (progressive and CMYK are what `image`'s encoder lacks).
pub fn jpeg(
    w: u16,
    h: u16,
    color: jpeg_encoder::ColorType,
    progressive: bool,
    sampling: jpeg_encoder::SamplingFactor,
    quality: u8,
) -> Vec<u8> {
    let channels = match color {
        jpeg_encoder::ColorType::Luma => 1,
        jpeg_encoder::ColorType::Cmyk
        | jpeg_encoder::ColorType::CmykAsYcck
        | jpeg_encoder::ColorType::Rgba => 4,
        _ => 3,
    };
    let data = raster8(u32::from(w), u32::from(h), channels);
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    encoder.set_progressive(progressive);
    encoder.set_sampling_factor(sampling);
    encoder.encode(&data, w, h, color).unwrap();
    out
}

/// A baseline JPEG from `image`'s encoder.
pub fn jpeg_baseline(image: &DynamicImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(image)
        .unwrap();
    out
}

/// A lossless WebP from `image`'s encoder.
pub fn webp_lossless(image: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .encode(
            image.as_bytes(),
            image.width(),
            image.height(),
            image.color().into(),
        )
        .unwrap();
    out
}

/// Every synthetic case of the bit-identity test: (name, bytes).
pub fn identity_cases() -> Vec<(String, Vec<u8>)> {
    use png::{BitDepth as D, ColorType as C};
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, bytes: Vec<u8>| cases.push((name.to_owned(), bytes));
    let (w, h) = (517, 389);

    // PNG through image's encoder: every 8- and 16-bit mode.
    for channels in 1..=4 {
        add(
            &format!("png-8bit-{channels}ch"),
            encode(&dynamic8(w, h, channels), ImageFormat::Png),
        );
        add(
            &format!("png-16bit-{channels}ch"),
            encode(&dynamic16(w, h, channels), ImageFormat::Png),
        );
    }
    add(
        "png-16bit-3ch-large",
        encode(&dynamic16(2600, 1950, 3), ImageFormat::Png),
    );
    add(
        "png-8bit-3ch-wide",
        encode(&dynamic8(3001, 3, 3), ImageFormat::Png),
    );
    add(
        "png-8bit-3ch-tall",
        encode(&dynamic8(5, 2001, 3), ImageFormat::Png),
    );
    add("png-8bit-1x1", encode(&dynamic8(1, 1, 3), ImageFormat::Png));
    add(
        "png-8bit-224x224",
        encode(&dynamic8(224, 224, 3), ImageFormat::Png),
    );

    // PNG through the png crate: palette (with and without tRNS), low bit depths, tRNS on grey/RGB.
    let pal = palette256();
    let trns: Vec<u8> = (0..256u32).map(|i| (i * 5 % 256) as u8).collect();
    for (name, trns) in [
        ("png-palette-trns", Some(trns.clone())),
        ("png-palette", None),
    ] {
        add(
            name,
            png(w, h, C::Indexed, D::Eight, Some(pal.clone()), trns, |y| {
                (0..w).map(|x| index8(x, y, w, h)).collect()
            }),
        );
    }
    add(
        "png-palette-4bit",
        png(
            w,
            h,
            C::Indexed,
            D::Four,
            Some(pal[..48].to_vec()),
            None,
            |y| pack_bits((0..w).map(|x| index8(x, y, w, h) % 16), 4),
        ),
    );
    for bits in [1u8, 2, 4] {
        let depth = D::from_u8(bits).unwrap();
        add(
            &format!("png-grey-{bits}bit"),
            png(w, h, C::Grayscale, depth, None, None, |y| {
                pack_bits((0..w).map(|x| sample8(x, y, w, h, 0) >> (8 - bits)), bits)
            }),
        );
    }
    add(
        "png-grey8-trns",
        png(w, h, C::Grayscale, D::Eight, None, Some(vec![0, 90]), |y| {
            (0..w).map(|x| sample8(x, y, w, h, 0)).collect()
        }),
    );
    add(
        "png-rgb8-trns",
        png(
            w,
            h,
            C::Rgb,
            D::Eight,
            None,
            Some(vec![0, 60, 0, 70, 0, 80]),
            |y| {
                (0..w)
                    .flat_map(|x| (0..3).map(move |c| sample8(x, y, w, h, c)))
                    .collect()
            },
        ),
    );
    add(
        "png-rgb16-trns",
        png(
            w,
            h,
            C::Rgb,
            D::Sixteen,
            None,
            Some(vec![1, 2, 3, 4, 5, 6]),
            |y| {
                (0..w)
                    .flat_map(|x| (0..3).flat_map(move |c| sample16(x, y, w, h, c).to_be_bytes()))
                    .collect()
            },
        ),
    );

    // Adam7-interlaced PNGs (decoded whole).
    let (iw, ih) = (301, 203);
    add(
        "png-interlaced-rgb8",
        png_interlaced(iw, ih, 2, 8, None, None, |x, y| {
            (0..3).map(|c| sample8(x, y, iw, ih, c)).collect()
        }),
    );
    add(
        "png-interlaced-grey16",
        png_interlaced(iw, ih, 0, 16, None, None, |x, y| {
            sample16(x, y, iw, ih, 0).to_be_bytes().to_vec()
        }),
    );
    add(
        "png-interlaced-rgba16",
        png_interlaced(iw, ih, 6, 16, None, None, |x, y| {
            (0..4)
                .flat_map(|c| sample16(x, y, iw, ih, c).to_be_bytes())
                .collect()
        }),
    );
    add(
        "png-interlaced-palette-trns",
        png_interlaced(iw, ih, 3, 8, Some(&pal), Some(&trns), |x, y| {
            vec![index8(x, y, iw, ih)]
        }),
    );
    add(
        "png-interlaced-grey2",
        png_interlaced(iw, ih, 0, 2, None, None, |x, y| {
            vec![sample8(x, y, iw, ih, 0) >> 6]
        }),
    );

    // JPEG: baseline from image, progressive / CMYK / sampling variants from jpeg-encoder.
    use jpeg_encoder::{ColorType as J, SamplingFactor as S};
    add("jpeg-rgb", jpeg_baseline(&dynamic8(640, 480, 3), 90));
    add("jpeg-grey", jpeg_baseline(&dynamic8(640, 480, 1), 90));
    add("jpeg-cmyk", jpeg(600, 450, J::Cmyk, false, S::F_1_1, 90));
    add(
        "jpeg-ycck",
        jpeg(600, 450, J::CmykAsYcck, false, S::F_2_2, 90),
    );
    add(
        "jpeg-progressive-420",
        jpeg(800, 600, J::Rgb, true, S::F_2_2, 85),
    );
    add(
        "jpeg-progressive-444",
        jpeg(801, 599, J::Rgb, true, S::F_1_1, 92),
    );
    add(
        "jpeg-progressive-grey",
        jpeg(700, 500, J::Luma, true, S::F_1_1, 90),
    );
    add("jpeg-422", jpeg(800, 600, J::Rgb, false, S::F_2_1, 90));
    // Large enough for DCT-scaled decoding (shorter side ≥ 1020 px).
    add("jpeg-12mp", jpeg_baseline(&dynamic8(4000, 3000, 3), 90));
    add(
        "jpeg-large-grey",
        jpeg_baseline(&dynamic8(2048, 1536, 1), 90),
    );
    add(
        "jpeg-large-progressive",
        jpeg(2400, 1800, J::Rgb, true, S::F_2_2, 85),
    );
    add(
        "jpeg-large-cmyk",
        jpeg(1200, 1100, J::Cmyk, false, S::F_1_1, 85),
    );
    add(
        "jpeg-large-wide",
        jpeg_baseline(&dynamic8(6000, 1030, 3), 85),
    );

    // GIF: full canvas, frame inside a larger canvas, interlaced, transparent index, animated.
    add(
        "gif-full",
        gif(320, 240, 0, 0, 320, 240, false, None, false),
    );
    add(
        "gif-offset",
        gif(320, 240, 50, 40, 100, 80, false, Some(3), false),
    );
    add(
        "gif-interlaced",
        gif(300, 207, 0, 0, 300, 207, true, None, false),
    );
    add(
        "gif-interlaced-offset",
        gif(300, 207, 10, 7, 250, 150, true, Some(9), false),
    );
    add(
        "gif-rows-band",
        gif(300, 207, 0, 20, 300, 100, false, None, false),
    );
    add(
        "gif-animated",
        gif(320, 240, 0, 0, 320, 240, false, None, true),
    );

    // WebP (lossless; lossy is covered by tests/fixtures/tiny.webp), TIFF, BMP.
    add("webp-rgb", webp_lossless(&dynamic8(w, h, 3)));
    add("webp-rgba", webp_lossless(&dynamic8(w, h, 4)));
    for channels in [1, 3, 4] {
        add(
            &format!("tiff-8bit-{channels}ch"),
            encode(&dynamic8(w, h, channels), ImageFormat::Tiff),
        );
        add(
            &format!("tiff-16bit-{channels}ch"),
            encode(&dynamic16(w, h, channels), ImageFormat::Tiff),
        );
    }
    let float = DynamicImage::ImageRgb32F(dynamic16(w, h, 3).to_rgb32f());
    add("tiff-rgb32f", encode(&float, ImageFormat::Tiff));
    add("bmp-rgb", encode(&dynamic8(w, h, 3), ImageFormat::Bmp));
    add("bmp-rgba", encode(&dynamic8(w, h, 4), ImageFormat::Bmp));
    add("bmp-grey", encode(&dynamic8(w, h, 1), ImageFormat::Bmp));
    cases
}

/// An 8-bit RLE-compressed BMP (BI_RLE8; no encoder writes one) of the pattern's palette
/// indices.
pub fn bmp_rle8(w: u32, h: u32) -> Vec<u8> {
    bmp_rle8_with(w, h, |x, y| index8(x, y, w, h))
}

/// An RLE8 BMP: every row is runs of up to 255 pixels of the index `index(x, y)` at the run's
/// start, so a huge image takes ~130 bytes a row.
pub fn bmp_rle8_with(w: u32, h: u32, index: impl Fn(u32, u32) -> u8) -> Vec<u8> {
    let palette: Vec<u8> = palette256()
        .chunks_exact(3)
        .flat_map(|c| [c[2], c[1], c[0], 0])
        .collect();
    let mut data = Vec::new();
    for y in 0..h {
        let mut x = 0;
        while x < w {
            let run = (w - x).min(255);
            data.push(run as u8);
            data.push(index(x, y));
            x += run;
        }
        data.extend_from_slice(&[0, 0]); // end of row
    }
    data.extend_from_slice(&[0, 1]); // end of bitmap
    let offset = 14 + 40 + palette.len() as u32;
    let mut out = Vec::new();
    out.extend_from_slice(b"BM");
    out.extend_from_slice(&(offset + data.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&(w as i32).to_le_bytes());
    out.extend_from_slice(&(h as i32).to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // planes
    out.extend_from_slice(&8u16.to_le_bytes()); // bits per pixel
    out.extend_from_slice(&1u32.to_le_bytes()); // BI_RLE8
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 8]); // resolution
    out.extend_from_slice(&256u32.to_le_bytes()); // colours used
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&palette);
    out.extend_from_slice(&data);
    out
}

/// A large PNG of any 8- or 16-bit colour type written row by row (never a full raster in
/// memory), `interlaced` = false only.
pub fn png_streamed(w: u32, h: u32, color: png::ColorType, depth: png::BitDepth) -> Vec<u8> {
    let channels = color.samples() as u32;
    let palette = (color == png::ColorType::Indexed).then(palette256);
    let trns = (color == png::ColorType::Indexed).then(|| vec![0u8, 128, 255]);
    png(w, h, color, depth, palette, trns, |y| {
        // Cheap per-pixel values: a gradient along x, shifted per row.
        (0..w)
            .flat_map(|x| {
                (0..channels).flat_map(move |c| {
                    let v = ((x / 3 + y / 2 + c * 50) % 256) as u8;
                    if depth == png::BitDepth::Sixteen {
                        vec![v, v ^ 0x5A]
                    } else {
                        vec![v]
                    }
                })
            })
            .collect()
    })
}
