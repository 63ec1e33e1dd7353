//! A DenseNet transition between two dense blocks: `BN → ReLU → 2×2 average pool, stride 2 →
//! 1×1 convolution` (the pool first: it commutes with the convolution, [`crate::model::rewrite`]),
//! from the dense block's pixel-major buffer straight into the next block's.
//!
//! tract runs it as four passes over NCHW tensors (batch norm, ReLU, pool, then a packed matrix
//! product) with the block's output transposed around them; here the batch norm, the ReLU and
//! the pool are one pass that reads each input value once, and the convolution is the
//! micro-kernel writing each pixel's row where the next block wants it.

use super::gemm::PackedB;
use super::isa::{lanes, lanes_mut, Arith, Isa, Kernel, LANES};
use super::parallel::{for_each, split};
use super::pointwise::Pointwise;

/// A transition's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The batch norm, per input channel: `x × scale + shift`, then ReLU.
    pub scale: Vec<f32>,
    /// See `scale`.
    pub shift: Vec<f32>,
    /// The 1×1 convolution, input channels × output channels.
    pub conv: PackedB,
}

impl Transition {
    /// Input channels.
    pub fn inputs(&self) -> usize {
        self.scale.len()
    }

    /// Output channels.
    pub fn outputs(&self) -> usize {
        self.conv.n()
    }

    /// Multiply-adds of one run on a `height × width` input.
    pub fn macs(&self, height: usize, width: usize) -> usize {
        (height / 2) * (width / 2) * self.inputs() * self.outputs()
    }

    /// Runs on `input` (pixel-major, `height × width` pixels of `stride` values, the first
    /// [`Transition::inputs`] of them read) into `out` (pixel-major, `height / 2 × width / 2`
    /// pixels of `out_stride` values, the first [`Transition::outputs`] written), in `parts`
    /// parts on tract's current executor.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        isa: Isa,
        input: &[f32],
        stride: usize,
        (height, width): (usize, usize),
        out: &mut [f32],
        out_stride: usize,
        parts: usize,
    ) {
        let (out_height, out_width) = (height / 2, width / 2);
        let channels = self.inputs();
        let mut pooled = vec![0.0f32; out_height * out_width * channels];
        let mut jobs = Vec::with_capacity(parts);
        let mut rest = pooled.as_mut_slice();
        for rows in split(out_height, parts, 1) {
            let (mine, others) =
                std::mem::take(&mut rest).split_at_mut(rows.len() * out_width * channels);
            rest = others;
            jobs.push(Pool {
                transition: self,
                input,
                stride,
                width,
                out_width,
                rows,
                out: mine,
            });
        }
        for_each(jobs, |job| isa.run(job));

        let pixels = out_height * out_width;
        let mut jobs = Vec::with_capacity(parts);
        let mut rest = &mut out[..pixels * out_stride];
        let out_row = |p: usize| p * out_stride;
        for range in split(pixels, parts, super::gemm::MR) {
            let (mine, others) = std::mem::take(&mut rest).split_at_mut(range.len() * out_stride);
            rest = others;
            jobs.push(Pointwise {
                input: &pooled,
                input_stride: channels,
                activation: None,
                weights: &self.conv,
                bias: None,
                relu: false,
                out_offset: range.start * out_stride,
                pixels: range,
                out: mine,
                out_row: &out_row,
            });
        }
        for_each(jobs, |job| isa.run(job));
    }
}

/// One part of the batch norm, ReLU and pool: output rows `rows`.
struct Pool<'a> {
    transition: &'a Transition,
    input: &'a [f32],
    stride: usize,
    width: usize,
    out_width: usize,
    rows: std::ops::Range<usize>,
    out: &'a mut [f32],
}

impl Kernel for Pool<'_> {
    type Output = ();

    #[inline(always)]
    fn run<A: Arith>(self, a: A) {
        let t = self.transition;
        let channels = t.inputs();
        let quarter = a.splat(0.25);
        let zero = a.splat(0.0);
        for (i, y) in self.rows.clone().enumerate() {
            for x in 0..self.out_width {
                let corner = (2 * y * self.width + 2 * x) * self.stride;
                let at = [
                    corner,
                    corner + self.stride,
                    corner + self.width * self.stride,
                    corner + (self.width + 1) * self.stride,
                ];
                let out = &mut self.out[(i * self.out_width + x) * channels..][..channels];
                let mut c = 0;
                while c + LANES <= channels {
                    let scale = a.load(lanes(&t.scale, c));
                    let shift = a.load(lanes(&t.shift, c));
                    let mut sum = zero;
                    for &p in &at {
                        let v = a.fma(a.load(lanes(self.input, p + c)), scale, shift);
                        sum = a.add(sum, a.max(v, zero));
                    }
                    a.store(a.fma(sum, quarter, zero), lanes_mut(out, c));
                    c += LANES;
                }
                for (c, out) in out.iter_mut().enumerate().take(channels).skip(c) {
                    let mut sum = 0.0;
                    for &p in &at {
                        sum += A::mul_add(self.input[p + c], t.scale[c], t.shift[c]).max(0.0);
                    }
                    *out = sum * 0.25;
                }
            }
        }
    }
}
