//! Pillow's antialiased bilinear resize (`Pillow/src/libImaging/Resample.c`), restricted to the
//! 224×224 window `CenterCrop` keeps, and fed one source row at a time.
//!
//! PIL resamples horizontally first, one row at a time, rounding each result to `u8`, then
//! vertically. So a decoder can hand its rows over as it produces them ([`HorizontalPass`] is a
//! [`RowSink`]): each row the vertical pass will read is reduced at once to the window's 224
//! columns and kept; every other row is dropped. The full-size image is never needed, only this
//! intermediate (at most ~14,500 rows × 224 × 3 bytes ≈ 10 MB for a 16384-pixel square).

use std::time::{Duration, Instant};

use super::error::ImageError;

/// Side of the square the model sees (torchvision `CenterCrop(224)`).
pub const CROP: u32 = 224;
/// Target of the shorter side before cropping (torchvision `Resize(255)`).
pub const RESIZE: u32 = 255;
/// ImageNet channel means used by the tutorial's `Normalize`.
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations used by the tutorial's `Normalize`.
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Number of `f32` values in one preprocessed image (`3 × 224 × 224`).
pub const TENSOR_LEN: usize = 3 * (CROP as usize) * (CROP as usize);

/// PIL's fixed-point precision for 8-bit resampling (`PRECISION_BITS` in Resample.c).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Where decoded rows go: the resize's horizontal pass. A decoder (a "row source") calls
/// [`RowSink::put_rgb8`] once for every row `y` for which [`RowSink::wants`] is true, in any
/// order; rows it is not asked for need not be converted.
pub trait RowSink {
    /// Whether row `y` of the source image is read by the resize at all.
    fn wants(&self, y: u32) -> bool;
    /// Row `y` as RGB8: exactly `3 × width` bytes.
    fn put_rgb8(&mut self, y: u32, row: &[u8]);
}

/// A decoder seen from the resize: it knows the size of the rows it will deliver, and hands
/// every row the [`RowSink`] wants to it, converted to RGB8, in any order.
pub trait RowSource {
    /// Width and height of the rows it delivers (smaller than the file's after DCT scaling).
    fn size(&self) -> (u32, u32);
    /// Width and height the file declares.
    fn source_size(&self) -> (u32, u32);
    /// Decodes, delivering each wanted row once. Errors are the image's fault (corrupt data).
    fn run(self: Box<Self>, sink: &mut dyn RowSink) -> Result<(), ImageError>;
}

/// The size torchvision's `Resize(255)` gives: shorter side 255, longer `int(255 * long / short)`.
pub fn resized_size(width: u32, height: u32) -> (u32, u32) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    // Python computes `int(size * long / short)` in double precision and truncates.
    let new_long = (f64::from(RESIZE) * f64::from(long) / f64::from(short)) as u32;
    if width <= height {
        (RESIZE, new_long.max(1))
    } else {
        (new_long.max(1), RESIZE)
    }
}

/// torchvision's `CenterCrop` offset: `int(round((dim - 224) / 2))`, with Python's round-half-even.
pub fn crop_offset(dim: u32) -> u32 {
    let offset = ((f64::from(dim) - f64::from(CROP)) / 2.0).round_ties_even();
    offset.max(0.0) as u32
}

/// PIL's resampling weights for the output pixels `first..first + count` of a resize from
/// `in_size` to `out_size` along one axis, already in 22-bit fixed point.
pub(crate) struct Coefficients {
    /// First input index each output pixel reads.
    starts: Vec<usize>,
    /// Fixed-point weights, `taps` per output pixel (zero-padded).
    weights: Vec<i32>,
    /// Number of weights per output pixel.
    taps: usize,
}

impl Coefficients {
    /// Port of `precompute_coeffs` + `normalize_coeffs_8bpc` (bilinear filter, support 1).
    pub(crate) fn new(in_size: u32, out_size: u32, first: u32, count: u32) -> Coefficients {
        let scale = f64::from(in_size) / f64::from(out_size);
        let filterscale = scale.max(1.0);
        let support = filterscale; // bilinear support (1.0) × filterscale
        let taps = (support.ceil() as usize) * 2 + 1;
        let count = count as usize;
        let mut starts = Vec::with_capacity(count);
        let mut weights = vec![0i32; count * taps];
        let mut window = vec![0f64; taps];
        for (i, xx) in (first..first + count as u32).enumerate() {
            let center = (f64::from(xx) + 0.5) * scale;
            let ss = 1.0 / filterscale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size)) as usize;
            let len = xmax.saturating_sub(xmin).min(taps);
            let mut total = 0.0;
            for (x, w) in window.iter_mut().enumerate().take(len) {
                *w = bilinear((x as f64 + xmin as f64 - center + 0.5) * ss);
                total += *w;
            }
            for (x, w) in window.iter().enumerate().take(len) {
                let k = if total != 0.0 { w / total } else { *w };
                let fixed = k * f64::from(1u32 << PRECISION_BITS);
                weights[i * taps + x] = if k < 0.0 {
                    (fixed - 0.5) as i32
                } else {
                    (fixed + 0.5) as i32
                };
            }
            starts.push(xmin);
        }
        Coefficients {
            starts,
            weights,
            taps,
        }
    }

    /// Input rows (or columns) that the selected output pixels read: `first..end`.
    fn span(&self, in_size: usize) -> (usize, usize) {
        let first = self.starts.first().copied().unwrap_or(0);
        let end = self
            .starts
            .last()
            .map_or(0, |s| (s + self.taps).min(in_size));
        (first.min(end), end)
    }

    /// Bytes these coefficients occupy.
    fn heap_bytes(&self) -> usize {
        self.starts.len() * std::mem::size_of::<usize>() + self.weights.len() * 4
    }
}

/// PIL's triangle filter.
fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// PIL's `clip8`: fixed-point accumulator → `u8`, saturating.
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Bytes the resize itself holds for a `width`×`height` source: the intermediate rows and the
/// coefficients (part of every decode's cost, see `budget`).
pub(crate) fn resize_bytes(width: u32, height: u32) -> u64 {
    let (new_w, new_h) = resized_size(width, height);
    // Rows the vertical pass reads: ~CROP × scale plus the filter's reach at both ends.
    let scale_h = (f64::from(height) / f64::from(new_h)).max(1.0);
    let rows = (f64::from(CROP) * scale_h + 2.0 * scale_h.ceil() + 3.0).min(f64::from(height));
    let taps = |scale: f64| 2 * (scale.max(1.0).ceil() as u64) + 1;
    let coefficients =
        u64::from(CROP) * (taps(f64::from(width) / f64::from(new_w)) + taps(scale_h)) * 4
            + 2 * u64::from(CROP) * 8;
    rows as u64 * (u64::from(CROP) * 3 + 1)
        + coefficients
        + 3 * u64::from(CROP) * u64::from(CROP) * 5
}

/// The horizontal pass of the resize as a [`RowSink`]: keeps, for each source row the vertical
/// pass reads, the 224 output columns of the crop window (as `u8`, rounded as PIL rounds).
pub struct HorizontalPass {
    width: usize,
    horizontal: Coefficients,
    vertical: Coefficients,
    /// First source row the vertical pass reads.
    row_first: usize,
    /// Number of source rows it reads.
    rows: usize,
    /// `rows × 224 × 3` bytes: the horizontally resized rows.
    temp: Vec<u8>,
    /// Which of those rows have arrived.
    arrived: Vec<bool>,
    missing: usize,
    /// Time spent in this pass (the rest of a streaming decode's time is the decoder's).
    busy: Duration,
}

impl HorizontalPass {
    /// Plans `Resize(255)` + `CenterCrop(224)` for a `width`×`height` source (both ≥ 1).
    pub fn new(width: u32, height: u32) -> HorizontalPass {
        let (new_w, new_h) = resized_size(width, height);
        let horizontal = Coefficients::new(width, new_w, crop_offset(new_w), CROP);
        let vertical = Coefficients::new(height, new_h, crop_offset(new_h), CROP);
        let (row_first, row_end) = vertical.span(height as usize);
        let rows = row_end - row_first;
        let out_w = horizontal.starts.len();
        HorizontalPass {
            width: width as usize,
            horizontal,
            vertical,
            row_first,
            rows,
            temp: vec![0u8; rows * out_w * 3],
            arrived: vec![false; rows],
            missing: rows,
            busy: Duration::ZERO,
        }
    }

    /// Bytes this pass holds (for the budget's self-check in tests).
    pub fn heap_bytes(&self) -> usize {
        self.temp.len()
            + self.arrived.len()
            + self.horizontal.heap_bytes()
            + self.vertical.heap_bytes()
    }

    /// Time spent resizing rows so far.
    pub fn busy(&self) -> Duration {
        self.busy
    }

    /// Runs the vertical pass and normalises: the tutorial's `[3, 224, 224]` tensor. An error if
    /// the decoder did not deliver every row the resize needs (a decoder bug, never a panic).
    pub fn finish(mut self) -> Result<Vec<f32>, ImageError> {
        if self.missing != 0 {
            return Err(ImageError::Corrupt(format!(
                "the decoder delivered {} of the {} rows the resize needs",
                self.rows - self.missing,
                self.rows
            )));
        }
        let start = Instant::now();
        let window = self.vertical_pass();
        let tensor = normalize(&window);
        self.busy += start.elapsed();
        Ok(tensor)
    }

    /// Vertical pass: each output row is a weighted sum of intermediate rows.
    fn vertical_pass(&self) -> Vec<u8> {
        let half = 1i32 << (PRECISION_BITS - 1);
        let out_h = self.vertical.starts.len();
        let stride = self.horizontal.starts.len() * 3;
        let mut out = vec![0u8; out_h * stride];
        let mut acc = vec![0i32; stride];
        for (y, out_row) in out.chunks_exact_mut(stride).enumerate() {
            let start = self.vertical.starts[y] - self.row_first;
            let k = &self.vertical.weights[y * self.vertical.taps..(y + 1) * self.vertical.taps];
            acc.fill(half);
            let taps = k.len().min(self.rows.saturating_sub(start));
            for (t, &w) in k[..taps].iter().enumerate() {
                if w == 0 {
                    continue;
                }
                let row = &self.temp[(start + t) * stride..(start + t + 1) * stride];
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += i32::from(v) * w;
                }
            }
            for (o, &a) in out_row.iter_mut().zip(&acc) {
                *o = clip8(a);
            }
        }
        out
    }
}

impl RowSink for HorizontalPass {
    fn wants(&self, y: u32) -> bool {
        let y = y as usize;
        y >= self.row_first && y < self.row_first + self.rows
    }

    fn put_rgb8(&mut self, y: u32, row: &[u8]) {
        if !self.wants(y) || row.len() != self.width * 3 {
            return;
        }
        let start_time = Instant::now();
        let r = y as usize - self.row_first;
        let half = 1i32 << (PRECISION_BITS - 1);
        let h = &self.horizontal;
        let out_w = h.starts.len();
        let out_row = &mut self.temp[r * out_w * 3..(r + 1) * out_w * 3];
        for (x, out_px) in out_row.chunks_exact_mut(3).enumerate() {
            let start = h.starts[x];
            let k = &h.weights[x * h.taps..(x + 1) * h.taps];
            let mut acc = [half; 3];
            let taps = k.len().min(self.width.saturating_sub(start));
            for (t, &w) in k[..taps].iter().enumerate() {
                let px = &row[(start + t) * 3..(start + t) * 3 + 3];
                acc[0] += i32::from(px[0]) * w;
                acc[1] += i32::from(px[1]) * w;
                acc[2] += i32::from(px[2]) * w;
            }
            out_px[0] = clip8(acc[0]);
            out_px[1] = clip8(acc[1]);
            out_px[2] = clip8(acc[2]);
        }
        if !std::mem::replace(&mut self.arrived[r], true) {
            self.missing -= 1;
        }
        self.busy += start_time.elapsed();
    }
}

/// `ToTensor()` + `Normalize(MEAN, STD)` in f32, as torch computes it: `(v / 255 - mean) / std`,
/// written channel-major.
fn normalize(rgb: &[u8]) -> Vec<f32> {
    /// Every possible normalised value per channel, computed once per process.
    static LUT: once_cell::sync::Lazy<[[f32; 256]; 3]> = once_cell::sync::Lazy::new(|| {
        std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 / 255.0 - MEAN[c]) / STD[c]))
    });
    let plane = rgb.len() / 3;
    let mut tensor = vec![0f32; rgb.len()];
    for (c, lut) in LUT.iter().enumerate() {
        let out = &mut tensor[c * plane..(c + 1) * plane];
        for (o, px) in out.iter_mut().zip(rgb.chunks_exact(3)) {
            *o = lut[usize::from(px[c])];
        }
    }
    tensor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resized_size_follows_torchvision() {
        assert_eq!(resized_size(720, 720), (255, 255));
        assert_eq!(resized_size(224, 168), (340, 255));
        assert_eq!(resized_size(451, 300), (383, 255));
        assert_eq!(resized_size(1, 1000), (255, 255_000));
    }

    #[test]
    fn crop_offset_rounds_half_to_even() {
        assert_eq!(crop_offset(255), 16); // 15.5 → 16
        assert_eq!(crop_offset(257), 16); // 16.5 → 16
        assert_eq!(crop_offset(224), 0);
    }

    #[test]
    fn identity_resize_keeps_pixels() {
        // A 224×224 source is resized to 255×255 and cropped; check a 10×10 identity instead
        // through the coefficients alone.
        let c = Coefficients::new(10, 10, 0, 10);
        assert_eq!(c.taps, 3);
        for (i, &s) in c.starts.iter().enumerate() {
            let k = &c.weights[i * c.taps..(i + 1) * c.taps];
            let at = i - s;
            assert_eq!(k[at], 1 << PRECISION_BITS);
            assert!(k.iter().enumerate().all(|(j, &w)| j == at || w == 0));
        }
    }

    #[test]
    fn rows_may_arrive_in_any_order_and_unwanted_rows_are_ignored() {
        let (w, h) = (300u32, 500u32);
        let row =
            |y: u32| -> Vec<u8> { (0..w * 3).map(|i| ((i * 7 + y * 13) % 251) as u8).collect() };
        let mut forward = HorizontalPass::new(w, h);
        for y in 0..h {
            if forward.wants(y) {
                forward.put_rgb8(y, &row(y));
            }
        }
        let mut backward = HorizontalPass::new(w, h);
        for y in (0..h).rev() {
            backward.put_rgb8(y, &row(y)); // also the unwanted ones: ignored
        }
        assert_eq!(forward.finish().unwrap(), backward.finish().unwrap());
    }

    #[test]
    fn missing_rows_are_an_error_not_a_panic() {
        let pass = HorizontalPass::new(400, 400);
        assert!(matches!(pass.finish(), Err(ImageError::Corrupt(_))));
    }

    #[test]
    fn resize_bytes_bounds_what_the_pass_holds() {
        for (w, h) in [
            (1, 1),
            (224, 224),
            (16_384, 16_384),
            (16_384, 1),
            (1, 16_384),
            (4000, 3000),
            (255, 16_384),
            (1021, 7),
        ] {
            let pass = HorizontalPass::new(w, h);
            assert!(
                pass.heap_bytes() as u64 <= resize_bytes(w, h),
                "{w}x{h}: holds {} > estimate {}",
                pass.heap_bytes(),
                resize_bytes(w, h)
            );
        }
    }

    #[test]
    fn uniform_image_stays_uniform() {
        let (w, h) = (1000u32, 37u32);
        let mut pass = HorizontalPass::new(w, h);
        let row: Vec<u8> = [10u8, 128, 250].repeat(w as usize);
        for y in 0..h {
            pass.put_rgb8(y, &row);
        }
        let t = pass.finish().unwrap();
        assert_eq!(t.len(), super::super::TENSOR_LEN);
        let plane = t.len() / 3;
        for c in 0..3 {
            let v = [10u8, 128, 250][c];
            let want = (f32::from(v) / 255.0 - MEAN[c]) / STD[c];
            assert!(t[c * plane..(c + 1) * plane].iter().all(|&x| x == want));
        }
    }
}
