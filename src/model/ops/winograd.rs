//! 3×3 convolutions of stride 1 by Winograd's minimal filtering: each `M × M` block of output
//! pixels comes from an `N × N` block of input (`N = M + 2`) through `N²` products per channel
//! pair instead of `9 M²`: F(2×2, 3×3) needs 2.25× fewer multiply-adds than a direct
//! convolution, F(4×4, 3×3) 4× fewer.
//!
//! Per input tile `d` and channel, `V = Bᵀ d B`; per filter `g`, `U = G g Gᵀ`, computed once
//! when the model is loaded; then for each of the `N²` positions ξ of a tile, `M_ξ = V_ξ × U_ξ`
//! is a matrix product over the input channels (tiles × channels by channels × filters, the
//! micro-kernel of [`super::gemm`]); and each output block is `Aᵀ M A`. The matrices are Lavin
//! and Gray's ("Fast Algorithms for Convolutional Neural Networks", 2016). F(2×2, 3×3)'s have
//! coefficients 0, ±1 and ±½ and lose almost nothing to rounding; F(4×4, 3×3)'s reach 8 and
//! 1/24, and lose more (`docs/performance.md` has both against tract's direct convolution).
//!
//! Tiles are processed in batches small enough for their transformed inputs to stay in the
//! core's L2 cache between the input transform and the products.

// The transforms are written as the matrices' index loops, each bound a constant, which the
// compiler unrolls; iterator chains over `[[V; N]; N]` would hide the matrices' shape.
#![allow(clippy::needless_range_loop)]

use super::gemm::{tile_rows, PackedB, Tile, MR, NR};
use super::isa::{lanes, lanes_mut, Arith, LANES};

/// The transforms of F(M×M, 3×3), tile side `N = M + 2`: one dimension of `Bᵀ`, `Aᵀ` written
/// out as additions and multiply-adds (the 2-D transforms apply it to columns, then rows), and
/// `G`.
pub trait Transform<const N: usize, const M: usize> {
    /// `G`, the filter transform.
    const G: [[f64; 3]; N];
    /// `Bᵀ x` for one column of a tile.
    fn input_1d<A: Arith>(a: A, x: [A::V; N]) -> [A::V; N];
    /// `Aᵀ x` for one column of a tile.
    fn output_1d<A: Arith>(a: A, x: [A::V; N]) -> [A::V; M];
}

/// F(2×2, 3×3): `Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]`,
/// `G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]`, `Aᵀ = [1 1 1 0; 0 1 −1 −1]`.
#[derive(Debug, Clone, Copy)]
pub struct F2;

impl Transform<4, 2> for F2 {
    const G: [[f64; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];

    #[inline(always)]
    fn input_1d<A: Arith>(a: A, x: [A::V; 4]) -> [A::V; 4] {
        [
            a.sub(x[0], x[2]),
            a.add(x[1], x[2]),
            a.sub(x[2], x[1]),
            a.sub(x[1], x[3]),
        ]
    }

    #[inline(always)]
    fn output_1d<A: Arith>(a: A, x: [A::V; 4]) -> [A::V; 2] {
        [
            a.add(a.add(x[0], x[1]), x[2]),
            a.sub(a.sub(x[1], x[2]), x[3]),
        ]
    }
}

/// F(4×4, 3×3), Lavin and Gray's points 0, ±1, ±2 and ∞:
/// `Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0;
/// 0 4 0 −5 0 1]`, `Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]`.
#[derive(Debug, Clone, Copy)]
pub struct F4;

impl Transform<6, 4> for F4 {
    const G: [[f64; 3]; 6] = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];

    #[inline(always)]
    fn input_1d<A: Arith>(a: A, x: [A::V; 6]) -> [A::V; 6] {
        let (four, minus4, minus5) = (a.splat(4.0), a.splat(-4.0), a.splat(-5.0));
        let t1 = a.fma(minus4, x[2], x[4]); // x4 − 4 x2
        let t2 = a.fma(minus4, x[1], x[3]); // x3 − 4 x1
        let t3 = a.sub(x[4], x[2]);
        let d31 = a.sub(x[3], x[1]);
        let t4 = a.add(d31, d31); // 2 (x3 − x1)
        [
            a.fma(minus5, x[2], a.fma(four, x[0], x[4])),
            a.add(t1, t2),
            a.sub(t1, t2),
            a.add(t3, t4),
            a.sub(t3, t4),
            a.fma(minus5, x[3], a.fma(four, x[1], x[5])),
        ]
    }

    #[inline(always)]
    fn output_1d<A: Arith>(a: A, x: [A::V; 6]) -> [A::V; 4] {
        let s12 = a.add(x[1], x[2]);
        let d12 = a.sub(x[1], x[2]);
        let s34 = a.add(x[3], x[4]);
        let d34 = a.sub(x[3], x[4]);
        [
            a.add(a.add(x[0], s12), s34),
            a.fma(a.splat(2.0), d34, d12),
            a.fma(a.splat(4.0), s34, s12),
            a.add(a.fma(a.splat(8.0), d34, d12), x[5]),
        ]
    }
}

/// `Bᵀ d B`: the 1-D input transform on every column, then every row. (Plain loops: the
/// standard library's array and iterator helpers are not always inlined, and out of line they
/// run without the instruction set the kernel was switched to.)
#[inline(always)]
fn input<T: Transform<N, M>, A: Arith, const N: usize, const M: usize>(
    a: A,
    d: &mut [[A::V; N]; N],
) {
    for j in 0..N {
        let mut column = [d[0][j]; N];
        for i in 1..N {
            column[i] = d[i][j];
        }
        let column = T::input_1d(a, column);
        for i in 0..N {
            d[i][j] = column[i];
        }
    }
    for row in d.iter_mut() {
        *row = T::input_1d(a, *row);
    }
}

/// `Aᵀ m A`: the 1-D output transform on every column, then every row.
#[inline(always)]
fn output<T: Transform<N, M>, A: Arith, const N: usize, const M: usize>(
    a: A,
    m: &[[A::V; N]; N],
    y: &mut [[A::V; M]; M],
) {
    let mut t = [[m[0][0]; N]; M];
    for j in 0..N {
        let mut column = [m[0][j]; N];
        for i in 1..N {
            column[i] = m[i][j];
        }
        let column = T::output_1d(a, column);
        for i in 0..M {
            t[i][j] = column[i];
        }
    }
    for i in 0..M {
        y[i] = T::output_1d(a, t[i]);
    }
}

/// `G g Gᵀ` of one 3×3 filter (row-major), in f64 then rounded once.
fn filter<T: Transform<N, M>, const N: usize, const M: usize>(g: &[f32]) -> [[f32; N]; N] {
    let gg: [[f64; 3]; N] = std::array::from_fn(|r| {
        std::array::from_fn(|c| (0..3).map(|k| T::G[r][k] * f64::from(g[k * 3 + c])).sum())
    });
    std::array::from_fn(|r| {
        std::array::from_fn(|c| (0..3).map(|k| gg[r][k] * T::G[c][k]).sum::<f64>() as f32)
    })
}

/// Tiles transformed and multiplied together.
const BATCH: usize = 24;

/// A 3×3 convolution's filters, transformed and packed for F(M×M, 3×3).
#[derive(Debug, Clone, PartialEq)]
pub struct Winograd<const N: usize, const M: usize> {
    /// `U_ξ` for the `N²` positions of a tile: input channels × filters.
    u: Vec<PackedB>,
    inputs: usize,
    outputs: usize,
}

/// Where the padded input image is, how it is laid out, and where the results go: see
/// [`Winograd::run`].
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    /// The input with a zero border of one pixel (at least), channels last, rows of
    /// `padded_width` pixels, readable past its last row (zeros).
    pub padded: &'a [f32],
    /// Pixels per row of `padded`: at least `⌈width / M⌉ × M + 2`, so that every tile's reads
    /// stay in its own row, in the zero border.
    pub padded_width: usize,
    /// The image's height.
    pub height: usize,
    /// The image's width.
    pub width: usize,
}

impl<const N: usize, const M: usize> Winograd<N, M> {
    /// Transforms `kernel` (`outputs × inputs × 3 × 3`, row-major, as ONNX stores it) for
    /// the F(M×M, 3×3) of `T`.
    pub fn new<T: Transform<N, M>>(
        kernel: &[f32],
        outputs: usize,
        inputs: usize,
    ) -> Winograd<N, M> {
        // Each filter's transform scattered into the N² packed matrices as it is computed.
        let mut u: Vec<PackedB> = (0..N * N)
            .map(|_| PackedB::zeros(inputs, outputs))
            .collect();
        for (f, g) in kernel.chunks_exact(9).take(outputs * inputs).enumerate() {
            let (o, i) = (f / inputs, f % inputs);
            let transformed = filter::<T, N, M>(g);
            for (xi, packed) in u.iter_mut().enumerate() {
                packed.set(i, o, transformed[xi / N][xi % N]);
            }
        }
        Winograd { u, inputs, outputs }
    }

    /// Output channels.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Input channels.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// The convolution of output rows `rows` (`rows.start` a multiple of `M`) of `image`, with
    /// the transforms of `T`; the results plus `bias` go to `out`: those rows of an image with
    /// `channels` channels per pixel, from channel `first`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn run<T: Transform<N, M>, A: Arith>(
        &self,
        arith: A,
        image: &Image,
        rows: std::ops::Range<usize>,
        bias: &[f32],
        out: &mut [f32],
        channels: usize,
        first: usize,
    ) {
        let (c_in, c_out) = (self.inputs, self.outputs);
        let (height, width, stride) = (image.height, image.width, image.padded_width);
        let tiles_across = width.div_ceil(M);
        let row_range = rows.start / M..rows.end.min(height).div_ceil(M);
        let tiles = row_range.start * tiles_across..row_range.end * tiles_across;
        let panels = c_out.div_ceil(NR);
        let width_m = panels * NR;
        // V rows padded to whole vectors, so that every transform is a vector one.
        let width_v = c_in.div_ceil(LANES) * LANES;
        let mut v = vec![0.0f32; N * N * BATCH * width_v];
        let mut m = vec![0.0f32; N * N * BATCH * width_m];
        let mut first_tile = tiles.start;
        while first_tile < tiles.end {
            let count = BATCH.min(tiles.end - first_tile);
            // V = Bᵀ d B per channel, into V_ξ (tile-major rows of channels).
            for t in 0..count {
                let tile = first_tile + t;
                let (y0, x0) = (tile / tiles_across * M, tile % tiles_across * M);
                // Pixel (i, j) of the tile's input starts at `corner + (i × stride + j) × c_in`.
                let corner = (y0 * stride + x0) * c_in;
                let mut dv = [[arith.splat(0.0); N]; N];
                let mut c0 = 0;
                while c0 < c_in {
                    let n = LANES.min(c_in - c0);
                    for i in 0..N {
                        for j in 0..N {
                            let at = corner + (i * stride + j) * c_in + c0;
                            dv[i][j] = load_partial(arith, image.padded, at, n);
                        }
                    }
                    input::<T, A, N, M>(arith, &mut dv);
                    for i in 0..N {
                        for j in 0..N {
                            let at = ((i * N + j) * BATCH + t) * width_v + c0;
                            arith.store(dv[i][j], lanes_mut(&mut v, at));
                        }
                    }
                    c0 += LANES;
                }
            }
            // M_ξ = V_ξ × U_ξ, N² products over the input channels.
            for xi in 0..N * N {
                let v_xi = &v[xi * BATCH * width_v..(xi + 1) * BATCH * width_v];
                for panel in 0..panels {
                    let u = self.u[xi].panel(panel, 0..c_in);
                    for t0 in (0..count).step_by(MR) {
                        let rows_here = MR.min(count - t0);
                        let a = tile_rows(|r| {
                            let t = t0 + r.min(rows_here - 1);
                            &v_xi[t * width_v..t * width_v + c_in]
                        });
                        let mut acc: Tile = [[0.0; NR]; MR];
                        arith.tile(&mut acc, a, u);
                        for (r, acc_row) in acc.iter().enumerate().take(rows_here) {
                            let at = (xi * BATCH + t0 + r) * width_m + panel * NR;
                            m[at..at + NR].copy_from_slice(acc_row);
                        }
                    }
                }
            }
            // Y = Aᵀ M A, plus the bias, into the image.
            let mut outputs = [[[0.0f32; LANES]; M]; M];
            for t in 0..count {
                let tile = first_tile + t;
                let (y0, x0) = (tile / tiles_across * M, tile % tiles_across * M);
                let mut o0 = 0;
                while o0 < c_out {
                    let n = LANES.min(c_out - o0);
                    let mut mm = [[arith.splat(0.0); N]; N];
                    for i in 0..N {
                        for j in 0..N {
                            let at = ((i * N + j) * BATCH + t) * width_m + o0;
                            mm[i][j] = arith.load(lanes(&m, at));
                        }
                    }
                    let mut yy = [[arith.splat(0.0); M]; M];
                    output::<T, A, N, M>(arith, &mm, &mut yy);
                    for i in 0..M {
                        for j in 0..M {
                            arith.store(yy[i][j], &mut outputs[i][j]);
                        }
                    }
                    let bias = &bias[o0..o0 + n];
                    for (i, row) in outputs.iter().enumerate() {
                        let y = y0 + i;
                        if y >= rows.end || y >= height {
                            continue;
                        }
                        for (j, values) in row.iter().enumerate() {
                            let x = x0 + j;
                            if x >= width {
                                continue;
                            }
                            let at = ((y - rows.start) * width + x) * channels + first + o0;
                            for k in 0..n {
                                out[at + k] = values[k] + bias[k];
                            }
                        }
                    }
                    o0 += LANES;
                }
            }
            first_tile += count;
        }
    }
}

/// `n` values (at most [`LANES`]) of `from` starting at `at` as a vector, zeros after them.
#[inline(always)]
fn load_partial<A: Arith>(a: A, from: &[f32], at: usize, n: usize) -> A::V {
    if n == LANES {
        a.load(lanes(from, at))
    } else {
        let mut values = [0.0; LANES];
        values[..n].copy_from_slice(&from[at..at + n]);
        a.load(&values)
    }
}
