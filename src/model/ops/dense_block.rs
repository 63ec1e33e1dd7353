//! A DenseNet dense block: every layer's `BN → ReLU → 1×1 convolution → BN → ReLU → 3×3
//! convolution`, and the concatenations between them, over one buffer.
//!
//! tract runs a dense block as the graph writes it: each layer concatenates every earlier output
//! again (a copy of the whole block so far), applies its batch norm and ReLU as separate passes,
//! packs the result for its matrix product, and lowers the 3×3 convolution to an im2col gather.
//! Here the block's channels live in one pixel-major (NHWC) buffer that each layer appends its
//! new channels to in place, so there is no concatenation at all; the first batch norm and ReLU
//! are applied while a tile's input rows are read, the second is folded into the 1×1 weights and
//! applied to its results as they are stored, with the zero padding of the 3×3 convolution
//! already around them; and the 3×3 convolution reads its neighbours straight from there.

use std::time::{Duration, Instant};

use super::conv3x3::{Conv3x3, Conv3x3Part};
use super::gemm::{PackedB, MR};
use super::isa::Isa;
use super::parallel::{for_each, split};
use super::pointwise::{Activation, Pointwise};
use super::winograd::Image;

/// One dense layer's parameters, folded and packed for the kernels.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseLayer {
    /// The first batch norm, per input channel: `x × scale + shift`, then ReLU.
    pub scale: Vec<f32>,
    /// See `scale`.
    pub shift: Vec<f32>,
    /// The 1×1 convolution, input channels × bottleneck channels, the second batch norm's scale
    /// folded in.
    pub pointwise: PackedB,
    /// The second batch norm's shift (added before its ReLU), per bottleneck channel.
    pub pointwise_bias: Vec<f32>,
    /// The 3×3 convolution.
    pub conv: Conv3x3,
    /// The 3×3 convolution's bias, per new channel.
    pub conv_bias: Vec<f32>,
}

impl DenseLayer {
    /// Channels this layer reads.
    pub fn inputs(&self) -> usize {
        self.scale.len()
    }

    /// Channels of the bottleneck between its two convolutions.
    pub fn bottleneck(&self) -> usize {
        self.pointwise.n()
    }

    /// Channels it adds to the block.
    pub fn growth(&self) -> usize {
        self.conv.outputs()
    }
}

/// A dense block of a batch of one `height × width` image with `inputs` channels.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseBlock {
    /// Channels of the block's input.
    pub inputs: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// The layers, in order; layer `i` reads every channel before it.
    pub layers: Vec<DenseLayer>,
}

/// Where a dense block's time goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepTimes {
    /// Buffers, NCHW ↔ NHWC at the edges, and the transitions.
    pub layout: Duration,
    /// The 1×1 convolutions, with both batch norms and ReLUs.
    pub pointwise: Duration,
    /// The 3×3 convolutions.
    pub conv3x3: Duration,
    /// The stem ([`super::stem`]), when the operator has one.
    pub stem: Duration,
}

impl DenseBlock {
    /// Channels of the block's output: its input's and every layer's.
    pub fn outputs(&self) -> usize {
        self.inputs + self.layers.iter().map(DenseLayer::growth).sum::<usize>()
    }

    /// Multiply-adds of one run: its 1×1 convolutions', and its 3×3 convolutions'.
    pub fn macs(&self) -> (usize, usize) {
        let pixels = self.height * self.width;
        let pointwise = self
            .layers
            .iter()
            .map(|l| l.inputs() * l.bottleneck())
            .sum::<usize>();
        let conv3x3 = self
            .layers
            .iter()
            .map(|l| 9 * l.bottleneck() * l.growth())
            .sum::<usize>();
        (pixels * pointwise, pixels * conv3x3)
    }

    /// Checks the layers chain: each reads exactly the channels before it.
    pub fn check(&self) -> Result<(), String> {
        let mut channels = self.inputs;
        for (i, layer) in self.layers.iter().enumerate() {
            let fits = layer.inputs() == channels
                && layer.shift.len() == channels
                && layer.pointwise.k() == channels
                && layer.pointwise_bias.len() == layer.bottleneck()
                && layer.conv.inputs() == layer.bottleneck()
                && layer.conv_bias.len() == layer.growth();
            if !fits {
                return Err(format!("dense layer {i} does not fit the block"));
            }
            channels += layer.growth();
        }
        if self.height == 0 || self.width == 0 {
            return Err("empty image".into());
        }
        Ok(())
    }

    /// Pixels per row of the padded bottleneck image: the width rounded up to whole Winograd
    /// tiles of up to four, and a border of one on each side.
    fn padded_width(&self) -> usize {
        self.width.div_ceil(4) * 4 + 2
    }

    /// Runs the layers on `block`, the block's pixel-major buffer (`height × width` pixels of
    /// [`DenseBlock::outputs`] channels), whose first [`DenseBlock::inputs`] channels hold the
    /// input: each layer fills its channels in place. The work of each step is shared between
    /// `parts` parts on tract's current executor.
    pub fn run(&self, isa: Isa, block: &mut [f32], parts: usize, times: &mut StepTimes) {
        let channels = self.outputs();
        let bottleneck = self.layers.iter().map(DenseLayer::bottleneck).max();
        // The padded bottleneck image: a zero border wide enough for every Winograd tile's
        // reads (whole tiles of up to 4 rows and columns, and the 3×3 border), and room past
        // its end for the reads of the last tiles.
        let padded_width = self.padded_width();
        let padded = (self.height.div_ceil(4) * 4 + 4) * padded_width + MR + 2;
        let mut middle = vec![0.0f32; padded * bottleneck.unwrap_or(0)];
        let mut stride = bottleneck.unwrap_or(0);
        let mut clock = Instant::now();
        let mut lap = |into: &mut Duration| {
            let now = Instant::now();
            *into += now - clock;
            clock = now;
        };
        for layer in &self.layers {
            // The padding must be zeros: a different bottleneck lays the image out anew.
            if layer.bottleneck() != stride {
                middle.fill(0.0);
                stride = layer.bottleneck();
            }
            self.pointwise(isa, layer, block, channels, &mut middle, parts);
            lap(&mut times.pointwise);
            self.conv3x3(isa, layer, &middle, block, channels, parts);
            lap(&mut times.conv3x3);
        }
    }

    /// The 1×1 convolution of `layer` (with both batch norms and ReLUs) over every pixel:
    /// `block` (its first `layer.inputs()` channels) → `middle`, the padded bottleneck image.
    fn pointwise(
        &self,
        isa: Isa,
        layer: &DenseLayer,
        block: &[f32],
        channels: usize,
        middle: &mut [f32],
        parts: usize,
    ) {
        let pixels = self.height * self.width;
        let stride = layer.bottleneck();
        let (width, padded_width) = (self.width, self.padded_width());
        let padded_row = |p: usize| ((p / width + 1) * padded_width + p % width + 1) * stride;
        // Each part computes a range of whole tiles of pixels and writes the padded rows they
        // land on, a range disjoint from the other parts'.
        let mut jobs = Vec::with_capacity(parts);
        let mut rest = &mut middle[..padded_row(pixels - 1) + stride];
        let mut offset = 0;
        for range in split(pixels, parts, MR) {
            let end = padded_row(range.end - 1) + stride;
            let (mine, others) = std::mem::take(&mut rest).split_at_mut(end - offset);
            jobs.push(Pointwise {
                input: block,
                input_stride: channels,
                activation: Some(Activation {
                    scale: &layer.scale,
                    shift: &layer.shift,
                }),
                weights: &layer.pointwise,
                bias: Some(&layer.pointwise_bias),
                relu: true,
                pixels: range,
                out: mine,
                out_offset: offset,
                out_row: &padded_row,
            });
            offset = end;
            rest = others;
        }
        for_each(jobs, |job| isa.run(job));
    }

    /// The 3×3 convolution of `layer` over every pixel: `middle` → the layer's new channels of
    /// `block`.
    fn conv3x3(
        &self,
        isa: Isa,
        layer: &DenseLayer,
        middle: &[f32],
        block: &mut [f32],
        channels: usize,
        parts: usize,
    ) {
        let row = self.width * channels;
        let mut jobs = Vec::with_capacity(parts);
        let mut rest = block;
        // Whole tiles of rows per part (Winograd computes several rows at once).
        for rows in split(self.height, parts, layer.conv.rows_at_once()) {
            let (mine, others) = std::mem::take(&mut rest).split_at_mut(rows.len() * row);
            rest = others;
            jobs.push(Conv3x3Part {
                conv: &layer.conv,
                bias: &layer.conv_bias,
                image: Image {
                    padded: middle,
                    padded_width: self.padded_width(),
                    height: self.height,
                    width: self.width,
                },
                rows,
                out: mine,
                channels,
                first: layer.inputs(),
            });
        }
        for_each(jobs, |job| isa.run(job));
    }
}
