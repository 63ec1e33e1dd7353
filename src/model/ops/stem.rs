//! DenseNet's stem: `convolution (k × k, stride s, its batch norm folded) → ReLU → max pool`, from
//! the image (NCHW, as tract hands it over) straight into the first dense block's pixel-major
//! buffer.
//!
//! tract runs it as an im2col matrix product over the whole image, a ReLU pass, a max pool over
//! NCHW planes, then the first dense block's transpose. Here the image is padded and made
//! pixel-major once (three channels: 0.6 MB for 224 × 224), each tile of output pixels gathers
//! its `k` input rows of `k × channels` contiguous values (stride 2 keeps each one contiguous)
//! into a scratch that stays in L1, the micro-kernel ([`super::gemm`]) multiplies it with the
//! packed weights, bias and ReLU applied as it stores, and the pool reads that pixel-major
//! result a vector of channels at a time and writes each pixel's row where the block wants it.
//! Convolution and pool go band by band of output rows, so the convolution's output never
//! exists whole.

use super::gemm::{PackedB, MR};
use super::isa::{lanes, lanes_mut, Arith, Isa, Kernel, LANES};
use super::layout::transpose;
use super::parallel::{for_each, split};
use super::pointwise::{Pointwise, BLOCK_TILES};

/// A square window sliding with a stride over a zero- (or, for the pool, nothing-) padded image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Side of the window.
    pub size: usize,
    /// Step between two outputs.
    pub stride: usize,
    /// Padding before the first row and column, and after the last.
    pub padding: usize,
}

impl Window {
    /// Outputs along a side of `input` values, the window always inside the padded input (as
    /// ONNX computes them without `ceil_mode`); `None` when no window fits.
    pub fn outputs(&self, input: usize) -> Option<usize> {
        let padded = input + 2 * self.padding;
        (self.stride > 0 && self.size > 0 && padded >= self.size)
            .then(|| (padded - self.size) / self.stride + 1)
    }
}

/// The stem's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Stem {
    /// Input channels.
    pub channels: usize,
    /// Input height and width.
    pub size: (usize, usize),
    /// The convolution's window.
    pub conv: Window,
    /// The convolution's weights with its batch norm folded, `(row, column, channel)` of the
    /// window × output channels: a window row is one contiguous run of the padded image.
    pub weights: PackedB,
    /// The convolution's bias with its batch norm folded, per output channel.
    pub bias: Vec<f32>,
    /// The max pool's window.
    pub pool: Window,
}

impl Stem {
    /// Output channels.
    pub fn outputs(&self) -> usize {
        self.weights.n()
    }

    /// The convolution's output: height, width.
    pub fn conv_size(&self) -> Option<(usize, usize)> {
        Some((
            self.conv.outputs(self.size.0)?,
            self.conv.outputs(self.size.1)?,
        ))
    }

    /// The stem's output (the pool's): height, width.
    pub fn output_size(&self) -> Option<(usize, usize)> {
        let (h, w) = self.conv_size()?;
        Some((self.pool.outputs(h)?, self.pool.outputs(w)?))
    }

    /// Checks that the parameters fit together.
    pub fn check(&self) -> Result<(), String> {
        let k = self.conv.size * self.conv.size * self.channels;
        if self.weights.k() != k || self.bias.len() != self.outputs() || self.outputs() == 0 {
            return Err("the stem's weights do not fit its window".into());
        }
        // Every pool window must hold a pixel of the convolution's output (else its maximum
        // is tract's padding value, not a pixel's).
        if self.pool.padding >= self.pool.size {
            return Err("a pool window of padding only".into());
        }
        self.output_size()
            .map(|_| ())
            .ok_or_else(|| "no window fits the image".into())
    }

    /// Multiply-adds of one run.
    pub fn macs(&self) -> usize {
        let (h, w) = self.conv_size().unwrap_or((0, 0));
        h * w * self.weights.k() * self.outputs()
    }

    /// Runs on one NCHW image into `out` (pixel-major, the pool's pixels of `out_stride` values,
    /// the first [`Stem::outputs`] of them written), in `parts` parts on tract's current
    /// executor.
    pub fn run(&self, isa: Isa, input: &[f32], out: &mut [f32], out_stride: usize, parts: usize) {
        let (Some((conv_height, conv_width)), Some((height, width))) =
            (self.conv_size(), self.output_size())
        else {
            return;
        };
        let c = self.channels;
        let pad = self.conv.padding;
        let (in_height, in_width) = self.size;
        // The image, padded and pixel-major.
        let padded_width = in_width + 2 * pad;
        let mut padded = vec![0.0f32; (in_height + 2 * pad) * padded_width * c];
        let plane = in_height * in_width;
        for y in 0..in_height {
            let at = ((y + pad) * padded_width + pad) * c;
            transpose(
                &input[y * in_width..],
                plane,
                c,
                in_width,
                &mut padded[at..],
                c,
            );
        }

        let mut jobs = Vec::with_capacity(parts);
        let mut rest = &mut out[..height * width * out_stride];
        for rows in split(height, parts, 1) {
            let (mine, others) =
                std::mem::take(&mut rest).split_at_mut(rows.len() * width * out_stride);
            rest = others;
            jobs.push(Part {
                stem: self,
                padded: &padded,
                padded_width,
                conv_size: (conv_height, conv_width),
                width,
                rows,
                out: mine,
                out_stride,
            });
        }
        for_each(jobs, |job| isa.run(job));
    }

    /// The convolution's rows that the pool's output rows `rows` read.
    #[inline(always)]
    fn conv_rows(
        &self,
        rows: &std::ops::Range<usize>,
        conv_height: usize,
    ) -> std::ops::Range<usize> {
        let Window {
            size,
            stride,
            padding,
        } = self.pool;
        let first = (rows.start * stride).saturating_sub(padding);
        let last = ((rows.end - 1) * stride + size)
            .saturating_sub(padding)
            .min(conv_height);
        first..last
    }
}

/// Pool output rows computed together: the convolution's rows they read (`2 × BAND + 1` for
/// DenseNet, 0.5 MB) stay in L2 between the two, instead of the whole convolution's output
/// (3.2 MB) going through memory; the rows shared by two bands are computed twice (1 in 17).
const BAND: usize = 8;

/// One part of the stem: the pool's output rows `rows`, band by band, each band's convolution
/// rows first.
struct Part<'a> {
    stem: &'a Stem,
    padded: &'a [f32],
    padded_width: usize,
    conv_size: (usize, usize),
    width: usize,
    rows: std::ops::Range<usize>,
    out: &'a mut [f32],
    out_stride: usize,
}

impl Kernel for Part<'_> {
    type Output = ();

    #[inline(always)]
    fn run<A: Arith>(self, arith: A) {
        let stem = self.stem;
        let n = stem.outputs();
        let (conv_height, conv_width) = self.conv_size;
        let mut conv = Vec::new();
        let mut out = self.out;
        for first in self.rows.clone().step_by(BAND) {
            let rows = first..(first + BAND).min(self.rows.end);
            let needed = stem.conv_rows(&rows, conv_height);
            conv.resize(needed.len() * conv_width * n, 0.0);
            Convolution {
                stem,
                padded: self.padded,
                padded_width: self.padded_width,
                conv_width,
                pixels: needed.start * conv_width..needed.end * conv_width,
                out: &mut conv,
            }
            .run(arith);
            let (mine, others) =
                std::mem::take(&mut out).split_at_mut(rows.len() * self.width * self.out_stride);
            out = others;
            MaxPool {
                pool: stem.pool,
                channels: n,
                input: &conv,
                first_row: needed.start,
                size: self.conv_size,
                width: self.width,
                rows,
                out: mine,
                out_stride: self.out_stride,
            }
            .run(arith);
        }
    }
}

/// One part of the convolution: output pixels `pixels`, row-major.
struct Convolution<'a> {
    stem: &'a Stem,
    padded: &'a [f32],
    padded_width: usize,
    conv_width: usize,
    pixels: std::ops::Range<usize>,
    out: &'a mut [f32],
}

impl Kernel for Convolution<'_> {
    type Output = ();

    /// [`BLOCK_TILES`] tiles of pixels at a time: their windows gathered into a scratch (each
    /// window row one copy), then multiplied as a 1×1 convolution of that scratch.
    #[inline(always)]
    fn run<A: Arith>(self, arith: A) {
        let stem = self.stem;
        let (c, side, stride) = (stem.channels, stem.conv.size, stem.conv.stride);
        let k = stem.weights.k();
        let run = side * c;
        let n = stem.outputs();
        let block = BLOCK_TILES * MR;
        let mut windows = vec![0.0f32; block * k];
        let out_row = |p: usize| p * n;
        let mut out = self.out;
        for first in self.pixels.clone().step_by(block) {
            let count = block.min(self.pixels.end - first);
            for (p, window) in windows.chunks_exact_mut(k).take(count).enumerate() {
                let (y, x) = ((first + p) / self.conv_width, (first + p) % self.conv_width);
                for (row, to) in window.chunks_exact_mut(run).enumerate() {
                    let at = ((y * stride + row) * self.padded_width + x * stride) * c;
                    to.copy_from_slice(&self.padded[at..at + run]);
                }
            }
            let (mine, others) = std::mem::take(&mut out).split_at_mut(count * n);
            out = others;
            Pointwise {
                input: &windows,
                input_stride: k,
                activation: None,
                weights: &stem.weights,
                bias: Some(&stem.bias),
                relu: true,
                pixels: 0..count,
                out: mine,
                out_offset: 0,
                out_row: &out_row,
            }
            .run(arith);
        }
    }
}

/// One part of the max pool: output rows `rows`, from the convolution's rows `first_row..` in
/// `input`.
struct MaxPool<'a> {
    pool: Window,
    channels: usize,
    input: &'a [f32],
    first_row: usize,
    /// The whole convolution's output: height, width.
    size: (usize, usize),
    width: usize,
    rows: std::ops::Range<usize>,
    out: &'a mut [f32],
    out_stride: usize,
}

impl Kernel for MaxPool<'_> {
    type Output = ();

    #[inline(always)]
    fn run<A: Arith>(self, a: A) {
        let Window {
            size,
            stride,
            padding,
        } = self.pool;
        let (height, width) = self.size;
        let n = self.channels;
        // The window's rows or columns inside the image, for output position `o`.
        let span = |o: usize, len: usize| {
            let first = (o * stride).saturating_sub(padding);
            let last = (o * stride + size).saturating_sub(padding).min(len);
            first..last
        };
        for (i, y) in self.rows.clone().enumerate() {
            let ys = span(y, height);
            for x in 0..self.width {
                let xs = span(x, width);
                let out = &mut self.out[(i * self.width + x) * self.out_stride..][..n];
                let (ys, row0) = (ys.clone(), self.first_row);
                let first = ((ys.start - row0) * width + xs.start) * n;
                let mut ch = 0;
                while ch + LANES <= n {
                    let mut m = a.load(lanes(self.input, first + ch));
                    for yy in ys.clone() {
                        for xx in xs.clone() {
                            let v = a.load(lanes(self.input, ((yy - row0) * width + xx) * n + ch));
                            m = a.max(v, m);
                        }
                    }
                    a.store(m, lanes_mut(out, ch));
                    ch += LANES;
                }
                for (ch, out) in out.iter_mut().enumerate().skip(ch) {
                    let mut m = self.input[first + ch];
                    for yy in ys.clone() {
                        for xx in xs.clone() {
                            m = m.max(self.input[((yy - row0) * width + xx) * n + ch]);
                        }
                    }
                    *out = m;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_as_onnx_does() {
        let w = |size, stride, padding| Window {
            size,
            stride,
            padding,
        };
        assert_eq!(w(7, 2, 3).outputs(224), Some(112));
        assert_eq!(w(3, 2, 1).outputs(112), Some(56));
        assert_eq!(w(3, 2, 1).outputs(1), Some(1));
        assert_eq!(w(7, 1, 0).outputs(6), None);
    }
}
