//! The operator tract's graph runs: a chain of DenseNet stages, each a dense block
//! ([`super::dense_block`]) and the transition that follows it, if any
//! ([`super::transition`]), optionally behind the network's stem ([`super::stem`]), which then
//! writes straight into the first block's buffer. One block alone is a chain of one;
//! consecutive blocks are merged into one chain, so that between them the image stays in the
//! operators' pixel-major buffers: only the chain's input and output are transposed from and to
//! tract's NCHW tensors, and a transition writes its output straight into the next block's
//! buffer.

use std::time::Instant;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::dense_block::{DenseBlock, StepTimes};
use super::isa::Isa;
use super::layout::transpose;
use super::parallel::threads;
use super::stem::Stem;
use super::transition::Transition;

/// A dense block and the transition after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// The dense block.
    pub block: DenseBlock,
    /// The transition after it, if the graph has one there.
    pub transition: Option<Transition>,
}

impl Stage {
    /// The stage's output: channels, height, width.
    pub fn output(&self) -> (usize, usize, usize) {
        let block = &self.block;
        match &self.transition {
            Some(t) => (t.outputs(), block.height / 2, block.width / 2),
            None => (block.outputs(), block.height, block.width),
        }
    }
}

/// DenseNet's stages from one dense block's input to the last one's output, as one operator.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseBlocks {
    /// The stem before the first stage, when the graph has one there: the operator then takes
    /// the image.
    pub stem: Option<Arc<Stem>>,
    /// The stages, in order; each takes the previous one's output. Shared: tract clones
    /// operators as it rewrites and compacts the graph, and a stage holds megabytes of weights.
    pub stages: Vec<Arc<Stage>>,
}

// The parameters are plain numbers, compared as such (tract only compares ops to merge duplicates).
impl Eq for DenseBlocks {}

impl DenseBlocks {
    /// The input: channels, height, width.
    pub fn input(&self) -> (usize, usize, usize) {
        if let Some(stem) = &self.stem {
            return (stem.channels, stem.size.0, stem.size.1);
        }
        let block = &self.stages[0].block;
        (block.inputs, block.height, block.width)
    }

    /// The output: channels, height, width.
    pub fn output(&self) -> (usize, usize, usize) {
        self.stages[self.stages.len() - 1].output()
    }

    /// Checks that every stage fits the one before.
    pub fn check(&self) -> Result<(), String> {
        let mut input = self.stages.first().ok_or("no stage")?.block.inputs;
        let mut size = (self.stages[0].block.height, self.stages[0].block.width);
        if let Some(stem) = &self.stem {
            stem.check()?;
            if (stem.outputs(), stem.output_size()) != (input, Some(size)) {
                return Err("the first stage does not take the stem's output".into());
            }
        }
        for stage in &self.stages {
            let block = &stage.block;
            if (block.inputs, block.height, block.width) != (input, size.0, size.1) {
                return Err("a stage does not take the previous one's output".into());
            }
            block.check()?;
            if let Some(t) = &stage.transition {
                if t.inputs() != block.outputs() || t.conv.k() != t.inputs() {
                    return Err("a transition does not fit its block".into());
                }
            }
            (input, size.0, size.1) = stage.output();
        }
        Ok(())
    }

    /// Multiply-adds of one run: the 1×1 convolutions' (transitions included) and the 3×3
    /// convolutions' (as a direct convolution computes them); the stem's are
    /// [`Stem::macs`].
    pub fn macs(&self) -> (usize, usize) {
        self.stages.iter().fold((0, 0), |(p, c), stage| {
            let (bp, bc) = stage.block.macs();
            let t = stage
                .transition
                .as_ref()
                .map_or(0, |t| t.macs(stage.block.height, stage.block.width));
            (p + bp + t, c + bc)
        })
    }

    /// Multiply-adds of one run, all of them: the stem's, the 1×1 and the 3×3 convolutions'.
    pub fn all_macs(&self) -> usize {
        let (pointwise, conv3x3) = self.macs();
        pointwise + conv3x3 + self.stem.as_ref().map_or(0, |s| s.macs())
    }

    /// Runs the stages on one NCHW image into `output` (NCHW), with `isa`, sharing the work
    /// between the threads of tract's current executor.
    pub fn run(&self, isa: Isa, input: &[f32], output: &mut [f32]) {
        self.run_timed(isa, input, output, &mut StepTimes::default());
    }

    /// [`DenseBlocks::run`], adding the time of each step to `times` (for the benchmarks).
    pub fn run_timed(&self, isa: Isa, input: &[f32], output: &mut [f32], times: &mut StepTimes) {
        let parts = threads();
        let start = Instant::now();
        let first = &self.stages[0].block;
        let mut block = vec![0.0f32; first.height * first.width * first.outputs()];
        let pixels = first.height * first.width;
        match &self.stem {
            Some(stem) => {
                stem.run(isa, input, &mut block, first.outputs(), parts);
                times.stem += start.elapsed();
            }
            None => {
                transpose(
                    input,
                    pixels,
                    first.inputs,
                    pixels,
                    &mut block,
                    first.outputs(),
                );
                times.layout += start.elapsed();
            }
        }
        for (i, stage) in self.stages.iter().enumerate() {
            stage.block.run(isa, &mut block, parts, times);
            let start = Instant::now();
            let (channels, height, width) = stage.output();
            let stride = match self.stages.get(i + 1) {
                Some(next) => next.block.outputs(),
                None => channels,
            };
            let mut next = vec![0.0f32; height * width * stride];
            match &stage.transition {
                Some(t) => t.run(
                    isa,
                    &block,
                    stage.block.outputs(),
                    (stage.block.height, stage.block.width),
                    &mut next,
                    stride,
                    parts,
                ),
                None if self.stages.len() == i + 1 => next = block,
                None => {
                    for (to, from) in next
                        .chunks_exact_mut(stride)
                        .zip(block.chunks_exact(channels))
                    {
                        to[..channels].copy_from_slice(from);
                    }
                }
            }
            block = next;
            times.layout += start.elapsed();
        }
        let start = Instant::now();
        let (channels, height, width) = self.output();
        transpose(
            &block,
            channels,
            height * width,
            channels,
            output,
            height * width,
        );
        times.layout += start.elapsed();
    }
}

impl Op for DenseBlocks {
    fn name(&self) -> StaticName {
        "DenseBlocks".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let (c, h, w) = self.input();
        let (oc, oh, ow) = self.output();
        Ok(vec![format!(
            "{}{} stages, {c}×{h}×{w} → {oc}×{oh}×{ow}, {:.0} MMAC",
            if self.stem.is_some() { "stem and " } else { "" },
            self.stages.len(),
            self.all_macs() as f64 / 1e6
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for DenseBlocks {
    // Never folded into a constant: its input is the image.
    not_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let (c, h, w) = self.input();
        ensure!(
            input.shape() == [1, c, h, w],
            "DenseBlocks input {:?}",
            input.shape()
        );
        let view = input.try_as_plain_ram()?;
        let input = view.as_slice::<f32>()?;
        let (oc, oh, ow) = self.output();
        let mut output = Tensor::zero::<f32>(&[1, oc, oh, ow])?;
        {
            let mut out = output.try_as_plain_ram_mut()?;
            self.run(Isa::best(), input, out.as_slice_mut::<f32>()?);
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for DenseBlocks {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let (c, h, w) = self.input();
        ensure!(
            inputs.len() == 1
                && inputs[0].datum_type == f32::datum_type()
                && inputs[0].shape.as_concrete() == Some(&[1, c, h, w]),
            "DenseBlocks takes [1, {c}, {h}, {w}] f32"
        );
        let (oc, oh, ow) = self.output();
        Ok(tvec!(f32::fact([1, oc, oh, ow])))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            self.all_macs().into()
        )))
    }

    as_op!();
}
