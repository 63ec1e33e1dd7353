//! A 1×1 convolution over a range of pixels, as one job for one thread: the input's pixel rows
//! (optionally batch-normed and rectified as they are read) times packed weights, plus a bias
//! (optionally rectified), into the output's pixel rows. The dense layers' first convolutions
//! and the transitions' convolutions are both this.

use std::ops::Range;

use super::gemm::{tile_rows, PackedB, Tile, MR, NR};
use super::isa::{Arith, Kernel};

/// Tiles of pixels computed together, so that each weight panel is read from L1 for all of them.
pub const BLOCK_TILES: usize = 8;

/// Input channels taken at a time, so that a weight panel (`DEPTH × NR` values, 16 KiB) stays
/// in L1 while the block's tiles sweep it.
const DEPTH: usize = 256;

/// A batch norm folded to `x × scale + shift` per channel, then ReLU.
#[derive(Debug, Clone, Copy)]
pub struct Activation<'a> {
    /// Per channel.
    pub scale: &'a [f32],
    /// Per channel.
    pub shift: &'a [f32],
}

/// One part of a 1×1 convolution.
pub struct Pointwise<'a, R: Fn(usize) -> usize> {
    /// Pixel `p`'s input channels are `input[p × input_stride..][..weights.k()]`.
    pub input: &'a [f32],
    /// Values from one pixel's row of `input` to the next's.
    pub input_stride: usize,
    /// Applied to the inputs as they are read, when present.
    pub activation: Option<Activation<'a>>,
    /// Input channels × output channels.
    pub weights: &'a PackedB,
    /// Added to every output pixel, when present.
    pub bias: Option<&'a [f32]>,
    /// Whether the results are rectified.
    pub relu: bool,
    /// The pixels this part computes.
    pub pixels: Range<usize>,
    /// Where the results go: the part of the whole output from value `out_offset` on.
    pub out: &'a mut [f32],
    /// Where `out` starts in the whole output.
    pub out_offset: usize,
    /// Where pixel `p`'s output row starts in the whole output.
    pub out_row: &'a R,
}

impl<R: Fn(usize) -> usize> Kernel for Pointwise<'_, R> {
    type Output = ();

    /// Blocked for the caches: [`BLOCK_TILES`] tiles of pixels at a time, their input rows
    /// (activated, when asked, once per `DEPTH` channels into a scratch that stays in L1/L2),
    /// each weight panel then swept over all of them while it stays in L1.
    #[inline(always)]
    fn run<A: Arith>(self, arith: A) {
        let k = self.weights.k();
        let n = self.weights.n();
        let panels = self.weights.panels();
        let depth = DEPTH.min(k).max(1);
        // The activated rows' scratch, only when there is an activation to apply (the stem's
        // convolution calls this once per block of pixels, with none).
        let scratch = if self.activation.is_some() {
            BLOCK_TILES * MR * depth
        } else {
            0
        };
        let mut activated = vec![0.0f32; scratch];
        let mut acc: Vec<Tile> = vec![[[0.0; NR]; MR]; BLOCK_TILES * panels];
        let end = self.pixels.end;
        for first in self.pixels.clone().step_by(BLOCK_TILES * MR) {
            let count = (BLOCK_TILES * MR).min(end - first);
            let tiles = count.div_ceil(MR);
            acc.fill([[0.0; NR]; MR]);
            for k0 in (0..k).step_by(depth) {
                let kc = depth.min(k - k0);
                let rows: &[f32] = match self.activation {
                    Some(Activation { scale, shift }) => {
                        let (scale, shift) = (&scale[k0..k0 + kc], &shift[k0..k0 + kc]);
                        for (r, row) in activated.chunks_exact_mut(kc).enumerate().take(count) {
                            let pixel = &self.input[(first + r) * self.input_stride + k0..][..kc];
                            for (((out, &x), &s), &t) in
                                row.iter_mut().zip(pixel).zip(scale).zip(shift)
                            {
                                *out = A::mul_add(x, s, t).max(0.0);
                            }
                        }
                        &activated
                    }
                    None => self.input,
                };
                let (stride, base) = match self.activation {
                    Some(_) => (kc, 0),
                    None => (self.input_stride, first * self.input_stride + k0),
                };
                for panel in 0..panels {
                    let b = self.weights.panel(panel, k0..k0 + kc);
                    for tile in 0..tiles {
                        let last = count - 1;
                        let a = tile_rows(|r| {
                            let r = (tile * MR + r).min(last);
                            &rows[base + r * stride..][..kc]
                        });
                        arith.tile(&mut acc[tile * panels + panel], a, b);
                    }
                }
            }
            for (tile, tile_acc) in acc.chunks_exact(panels).enumerate().take(tiles) {
                for (panel, acc) in tile_acc.iter().enumerate() {
                    let columns = panel * NR..(panel * NR + NR).min(n);
                    let width = columns.len();
                    for (r, acc_row) in acc.iter().enumerate().take(count - tile * MR) {
                        let at =
                            (self.out_row)(first + tile * MR + r) - self.out_offset + columns.start;
                        let out = &mut self.out[at..at + width];
                        match (self.bias, self.relu) {
                            (Some(bias), true) => {
                                for ((o, &a), &b) in
                                    out.iter_mut().zip(acc_row).zip(&bias[columns.clone()])
                                {
                                    *o = (a + b).max(0.0);
                                }
                            }
                            (Some(bias), false) => {
                                for ((o, &a), &b) in
                                    out.iter_mut().zip(acc_row).zip(&bias[columns.clone()])
                                {
                                    *o = a + b;
                                }
                            }
                            (None, true) => {
                                for (o, &a) in out.iter_mut().zip(acc_row) {
                                    *o = a.max(0.0);
                                }
                            }
                            (None, false) => out.copy_from_slice(&acc_row[..width]),
                        }
                    }
                }
            }
        }
    }
}
