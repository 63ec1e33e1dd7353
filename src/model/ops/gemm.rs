//! The one matrix-product micro-kernel the operators are built on: a tile of [`MR`] rows by
//! [`NR`] columns of `A × B`, accumulated in registers, with `B` packed ahead of time and `A`
//! read as [`MR`] separate rows.
//!
//! In the operators, rows are pixels and columns output channels (NHWC), so each `A` row is one
//! pixel's input channels, contiguous: a 1×1 convolution reads its (activated) input as it lies,
//! and a 3×3 convolution reads the nine neighbours of each pixel as nine such rows, with no
//! im2col copy. `B` (the weights) is packed once when the model is loaded, in column panels of
//! [`NR`], so the kernel streams it in order. 6 × 16 is the classic shape for 16 vector registers
//! of 8 lanes (AVX2): 12 accumulators, 2 loads of `B` and 6 broadcasts of `A` per step; with
//! 4-lane NEON it is 24 accumulators of its 32 registers. Measured at 47.7-48.9 GMAC/s on an
//! AMD EPYC Zen 3 (the FMA peak of one core, 16 f32 multiply-adds a cycle at ~3.0 GHz).

/// Rows (pixels) of a tile.
pub const MR: usize = 6;
/// Columns (output channels) of a tile.
pub const NR: usize = 16;

/// A `k × n` matrix packed for the kernel's `B` side: `⌈n / NR⌉` column panels, each `k` rows of
/// [`NR`] values, the columns past `n` zero.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedB {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl PackedB {
    /// Packs the `k × n` matrix whose element `(row, column)` is `value(row, column)`.
    pub fn new(k: usize, n: usize, value: impl Fn(usize, usize) -> f32) -> PackedB {
        let panels = n.div_ceil(NR);
        let mut data = vec![0.0; panels * k * NR];
        for (panel, chunk) in data.chunks_exact_mut((k * NR).max(1)).enumerate() {
            for (row, values) in chunk.chunks_exact_mut(NR).enumerate() {
                for (c, v) in values.iter_mut().enumerate() {
                    let column = panel * NR + c;
                    if column < n {
                        *v = value(row, column);
                    }
                }
            }
        }
        PackedB { k, n, data }
    }

    /// The `k × n` matrix of zeros, for [`PackedB::set`]: for values that come in an order a
    /// closure per element would read across memory (a transform computing many at once).
    pub fn zeros(k: usize, n: usize) -> PackedB {
        PackedB {
            k,
            n,
            data: vec![0.0; n.div_ceil(NR) * k * NR],
        }
    }

    /// Sets element `(row, column)`.
    #[inline]
    pub fn set(&mut self, row: usize, column: usize, value: f32) {
        assert!(
            row < self.k && column < self.n,
            "({row}, {column}) outside {}×{}",
            self.k,
            self.n
        );
        self.data[((column / NR) * self.k + row) * NR + column % NR] = value;
    }

    /// Rows of the matrix.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of the matrix.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Column panels of [`NR`].
    pub fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }

    /// Rows `rows` of column panel `panel`, as the kernel reads them.
    #[inline(always)]
    pub fn panel(&self, panel: usize, rows: std::ops::Range<usize>) -> &[f32] {
        let start = panel * self.k * NR;
        &self.data[start + rows.start * NR..start + rows.end * NR]
    }
}

/// One tile of results, row by row.
pub type Tile = [[f32; NR]; MR];

/// The [`MR`] rows of a tile, `row(r)` each. (Written out: `std::array::from_fn` is not always
/// inlined, and out of line it runs without the kernel's instruction set.)
#[inline(always)]
pub fn tile_rows<'a>(row: impl Fn(usize) -> &'a [f32]) -> [&'a [f32]; MR] {
    [row(0), row(1), row(2), row(3), row(4), row(5)]
}

/// The rows of a tile as one iterator over `(b_row, [a values])`, with no bounds check and no
/// panic path: with one, the compiler must keep the accumulators in memory, up to date at every
/// potential panic, instead of in registers.
#[inline(always)]
fn steps<'a>(
    a: [&'a [f32]; MR],
    b: &'a [f32],
) -> impl Iterator<Item = (&'a [f32; NR], [f32; MR])> + 'a {
    let [a0, a1, a2, a3, a4, a5] = a;
    b.chunks_exact(NR)
        .zip(a0)
        .zip(a1)
        .zip(a2)
        .zip(a3)
        .zip(a4)
        .zip(a5)
        .map(|((((((b_row, &x0), &x1), &x2), &x3), &x4), &x5)| {
            let b_row: &[f32; NR] = b_row.try_into().unwrap_or(&[0.0; NR]);
            (b_row, [x0, x1, x2, x3, x4, x5])
        })
}

/// The tile in plain Rust ([`super::isa::Portable`]): a multiply then an add.
#[inline(always)]
pub fn tile_portable(acc: &mut Tile, a: [&[f32]; MR], b: &[f32]) {
    let mut c = *acc;
    for (b_row, x) in steps(a, b) {
        for r in 0..MR {
            for col in 0..NR {
                c[r][col] += x[r] * b_row[col];
            }
        }
    }
    *acc = c;
}

/// The tile with AVX2 and FMA: 12 accumulators of 8 lanes, 2 loads of `b` and 6 broadcasts of
/// `a` per step.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn tile_avx2(simd: pulp::x86::V3, acc: &mut Tile, a: [&[f32]; MR], b: &[f32]) {
    use std::arch::x86_64::__m256;
    // Row by row, so that the accumulators move as vector loads and stores, not a memcpy.
    let mut c: [[__m256; 2]; MR] = std::array::from_fn(|r| pulp::cast(acc[r]));
    for (b_row, x) in steps(a, b) {
        let b_row: [__m256; 2] = pulp::cast(*b_row);
        for r in 0..MR {
            let xr = simd.avx._mm256_set1_ps(x[r]);
            c[r][0] = simd.fma._mm256_fmadd_ps(xr, b_row[0], c[r][0]);
            c[r][1] = simd.fma._mm256_fmadd_ps(xr, b_row[1], c[r][1]);
        }
    }
    for (row, c) in acc.iter_mut().zip(c) {
        *row = pulp::cast(c);
    }
}

/// The tile with NEON: 24 accumulators of 4 lanes, 4 loads of `b` and 6 broadcasts of `a` per
/// step (of its 32 registers).
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub fn tile_neon(simd: pulp::aarch64::Neon, acc: &mut Tile, a: [&[f32]; MR], b: &[f32]) {
    use std::arch::aarch64::float32x4_t;
    let mut c: [[float32x4_t; 4]; MR] = std::array::from_fn(|r| pulp::cast(acc[r]));
    for (b_row, x) in steps(a, b) {
        let b_row: [float32x4_t; 4] = pulp::cast(*b_row);
        for r in 0..MR {
            let xr = simd.neon.vdupq_n_f32(x[r]);
            for v in 0..4 {
                c[r][v] = simd.neon.vfmaq_f32(c[r][v], xr, b_row[v]);
            }
        }
    }
    for (row, c) in acc.iter_mut().zip(c) {
        *row = pulp::cast(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::isa::{Arith, Isa, Kernel};

    #[test]
    fn set_packs_as_new_does() {
        let value = |i: usize, j: usize| (i * 31 + j) as f32;
        for (k, n) in [(1, 1), (5, 16), (7, 17), (3, 40)] {
            let mut set = PackedB::zeros(k, n);
            for j in (0..n).rev() {
                for i in 0..k {
                    set.set(i, j, value(i, j));
                }
            }
            assert_eq!(set, PackedB::new(k, n, value), "{k}×{n}");
        }
    }

    #[test]
    fn a_tile_is_the_matrix_product() {
        let k = 37;
        let a: Vec<Vec<f32>> = (0..MR)
            .map(|r| {
                (0..k)
                    .map(|i| ((r * 7 + i * 3) % 11) as f32 - 5.0)
                    .collect()
            })
            .collect();
        let n = 21;
        let b = PackedB::new(k, n, |i, j| ((i * 5 + j) % 13) as f32 * 0.5 - 3.0);
        assert_eq!(b.panels(), 2);
        /// One tile with the arithmetic of an instruction set.
        struct OneTile<'a> {
            rows: [&'a [f32]; MR],
            b: &'a [f32],
        }
        impl Kernel for OneTile<'_> {
            type Output = Tile;
            fn run<A: Arith>(self, arith: A) -> Tile {
                let mut acc = [[1.0; NR]; MR];
                arith.tile(&mut acc, self.rows, self.b);
                acc
            }
        }
        for isa in Isa::available() {
            for panel in 0..2 {
                let rows = std::array::from_fn(|r| a[r].as_slice());
                let got = isa.run(OneTile {
                    rows,
                    b: b.panel(panel, 0..k),
                });
                for (r, got) in got.iter().enumerate() {
                    for (c, &got) in got.iter().enumerate() {
                        let j = panel * NR + c;
                        let want: f32 = 1.0
                            + if j < n {
                                (0..k)
                                    .map(|i| a[r][i] * (((i * 5 + j) % 13) as f32 * 0.5 - 3.0))
                                    .sum::<f32>()
                            } else {
                                0.0
                            };
                        // Small integers and halves: every sum is exact.
                        assert_eq!(got, want, "{}", isa.name());
                    }
                }
            }
        }
    }
}
