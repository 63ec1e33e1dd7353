//! The 3×3 convolutions of stride 1 and padding 1 of the dense layers, from a zero-padded
//! pixel-major image: directly (each output pixel's nine neighbours read as nine rows of the
//! micro-kernel, no im2col copy) or by Winograd's minimal filtering ([`super::winograd`]).

use std::ops::Range;

use super::gemm::{tile_rows, PackedB, Tile, MR, NR};
use super::isa::{Arith, Kernel};
use super::pointwise::BLOCK_TILES;
use super::winograd::{Image, Winograd, F2, F4};

/// A 3×3 convolution's filters, packed for the way it is computed.
#[derive(Debug, Clone, PartialEq)]
pub enum Conv3x3 {
    /// Directly: (tap, input channel) × output channels, taps in row-major order.
    Direct(PackedB),
    /// By Winograd's F(2×2, 3×3).
    Winograd2(Winograd<4, 2>),
    /// By Winograd's F(4×4, 3×3).
    Winograd4(Winograd<6, 4>),
}

/// The ways [`Conv3x3`] can compute: the default is the one measured fastest within the
/// accuracy asked of the service (`docs/performance.md`); the others stay for comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Conv3x3Method {
    /// [`Conv3x3::Direct`].
    Direct,
    /// [`Conv3x3::Winograd2`].
    Winograd2,
    /// [`Conv3x3::Winograd4`].
    Winograd4,
    /// By the image's size: F(4×4, 3×3) where whole 4×4 tiles cover it (56×56, 28×28),
    /// F(2×2, 3×3) elsewhere (14×14; and 7×7, where 4×4 tiles would compute 8×8).
    #[default]
    Auto,
}

impl Conv3x3 {
    /// `kernel` (`outputs × inputs × 3 × 3`, row-major, as ONNX stores it) packed for
    /// `method`, on `height × width` images.
    pub fn new(
        method: Conv3x3Method,
        kernel: &[f32],
        outputs: usize,
        inputs: usize,
        (height, width): (usize, usize),
    ) -> Conv3x3 {
        let method = match method {
            Conv3x3Method::Auto if height % 4 == 0 && width % 4 == 0 => Conv3x3Method::Winograd4,
            Conv3x3Method::Auto => Conv3x3Method::Winograd2,
            method => method,
        };
        match method {
            Conv3x3Method::Direct => {
                Conv3x3::Direct(PackedB::new(9 * inputs, outputs, |row, o| {
                    let (tap, channel) = (row / inputs, row % inputs);
                    kernel[(o * inputs + channel) * 9 + tap]
                }))
            }
            Conv3x3Method::Winograd2 => {
                Conv3x3::Winograd2(Winograd::new::<F2>(kernel, outputs, inputs))
            }
            Conv3x3Method::Winograd4 | Conv3x3Method::Auto => {
                Conv3x3::Winograd4(Winograd::new::<F4>(kernel, outputs, inputs))
            }
        }
    }

    /// Input channels.
    pub fn inputs(&self) -> usize {
        match self {
            Conv3x3::Direct(packed) => packed.k() / 9,
            Conv3x3::Winograd2(winograd) => winograd.inputs(),
            Conv3x3::Winograd4(winograd) => winograd.inputs(),
        }
    }

    /// Output channels.
    pub fn outputs(&self) -> usize {
        match self {
            Conv3x3::Direct(packed) => packed.n(),
            Conv3x3::Winograd2(winograd) => winograd.outputs(),
            Conv3x3::Winograd4(winograd) => winograd.outputs(),
        }
    }

    /// Output rows computed together: a part of the image starts at a multiple of it.
    pub fn rows_at_once(&self) -> usize {
        match self {
            Conv3x3::Direct(_) => 1,
            Conv3x3::Winograd2(_) => 2,
            Conv3x3::Winograd4(_) => 4,
        }
    }
}

/// One part of a 3×3 convolution: output rows `rows` of `image`, plus `bias`, into `out` (those
/// rows of a pixel-major image of `channels` channels, from channel `first`).
pub struct Conv3x3Part<'a> {
    /// The convolution.
    pub conv: &'a Conv3x3,
    /// Per output channel.
    pub bias: &'a [f32],
    /// The input, zero-padded.
    pub image: Image<'a>,
    /// The output rows this part computes.
    pub rows: Range<usize>,
    /// Where they go.
    pub out: &'a mut [f32],
    /// Channels per pixel of `out`.
    pub channels: usize,
    /// The first channel of `out` written.
    pub first: usize,
}

impl Kernel for Conv3x3Part<'_> {
    type Output = ();

    #[inline(always)]
    fn run<A: Arith>(self, arith: A) {
        let Conv3x3Part {
            conv,
            bias,
            image,
            rows,
            out,
            channels,
            first,
        } = self;
        let packed = match conv {
            Conv3x3::Direct(packed) => packed,
            Conv3x3::Winograd2(winograd) => {
                winograd.run::<F2, A>(arith, &image, rows, bias, out, channels, first);
                return;
            }
            Conv3x3::Winograd4(winograd) => {
                winograd.run::<F4, A>(arith, &image, rows, bias, out, channels, first);
                return;
            }
        };
        let stride = conv.inputs();
        let outputs = conv.outputs();
        let panels = packed.panels();
        let (width, padded_width) = (image.width, image.padded_width);
        // Output positions are counted along the padded width: position q = y × padded width + x
        // reads the input rows q + ky × padded width + kx of the padded image for tap (ky, kx),
        // so a tile is MR consecutive positions; those past the width are computed and dropped.
        // Blocked for the caches: [`BLOCK_TILES`] tiles at a time, each tap's weight panel
        // swept over all of them while it stays in L1.
        let positions = rows.start * padded_width..rows.end * padded_width;
        let mut acc: Vec<Tile> = vec![[[0.0; NR]; MR]; BLOCK_TILES * panels];
        for start in positions.clone().step_by(BLOCK_TILES * MR) {
            let tiles = (BLOCK_TILES * MR).min(positions.end - start).div_ceil(MR);
            acc.fill([[0.0; NR]; MR]);
            for tap in 0..9 {
                let offset = (tap / 3) * padded_width + tap % 3;
                for panel in 0..panels {
                    let b = packed.panel(panel, tap * stride..(tap + 1) * stride);
                    for tile in 0..tiles {
                        let a = tile_rows(|r| {
                            let q = start + tile * MR + r + offset;
                            &image.padded[q * stride..][..stride]
                        });
                        arith.tile(&mut acc[tile * panels + panel], a, b);
                    }
                }
            }
            for (tile, tile_acc) in acc.chunks_exact(panels).enumerate().take(tiles) {
                for (panel, acc) in tile_acc.iter().enumerate() {
                    let columns = panel * NR..(panel * NR + NR).min(outputs);
                    let bias = &bias[columns.clone()];
                    for (r, acc_row) in acc.iter().enumerate() {
                        let q = start + tile * MR + r;
                        let (y, x) = (q / padded_width, q % padded_width);
                        if q >= positions.end || x >= width {
                            continue;
                        }
                        let at = ((y - rows.start) * width + x) * channels + first;
                        let out = &mut out[at + columns.start..at + columns.end];
                        for ((o, &a), &b) in out.iter_mut().zip(acc_row).zip(bias) {
                            *o = a + b;
                        }
                    }
                }
            }
        }
    }
}
