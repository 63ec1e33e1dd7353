//! The project's own operators inside tract's graph, for the patterns where tract's generic
//! operators are slow: DenseNet's stem, its dense blocks and the transitions between them (see
//! [`dense_blocks`]). They are matched by pattern
//! on the decluttered graph when a model is loaded (ONNX or NNEF alike) and replace exactly the
//! nodes they compute; whatever does not match runs through tract's own operators, and tract
//! optimises the rest of the graph around them.
//!
//! - [`dense_blocks`]: the operator: dense blocks and transitions, chained, behind the stem;
//! - [`dense_block`]: a dense block over one buffer, no concatenation;
//! - [`transition`]: batch norm, ReLU, pool and 1×1 convolution in two passes;
//! - [`stem`]: the network's first convolution, ReLU and max pool, into the first block;
//! - [`pointwise`], [`conv3x3`]: the convolutions, as jobs for one thread;
//! - [`winograd`]: 3×3 convolutions with 2.25× or 4× fewer multiply-adds;
//! - [`gemm`]: the matrix-product micro-kernel everything is built on;
//! - [`parallel`], [`layout`]: sharing work between threads; NCHW ↔ NHWC;
//! - [`isa`]: the instruction set the arithmetic runs with (AVX2+FMA, NEON, or portable);
//! - [`pattern`]: reading tract's nodes (batch norms, ReLUs, convolutions) into parameters.

pub mod conv3x3;
pub mod dense_block;
pub mod dense_blocks;
pub mod gemm;
pub mod isa;
pub mod layout;
pub mod parallel;
pub mod pattern;
pub mod pointwise;
pub mod stem;
pub mod transition;
pub mod winograd;

use tract_onnx::prelude::*;

pub use conv3x3::{Conv3x3, Conv3x3Method};
pub use dense_block::{DenseBlock, DenseLayer, StepTimes};
pub use dense_blocks::{DenseBlocks, Stage};
pub use pattern::Options;
pub use stem::Stem;
pub use transition::Transition;

/// What [`fuse`] replaced, for the load log line and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fused {
    /// Dense blocks now run by [`DenseBlock`].
    pub dense_blocks: usize,
    /// Stems now run by [`Stem`] (the network's first nodes).
    pub stems: usize,
}

/// Replaces every pattern of the model this module has an operator for, in place.
pub fn fuse(model: &mut TypedModel) -> TractResult<Fused> {
    fuse_with(model, &Options::default())
}

/// [`fuse`] with non-default choices (for comparisons).
pub fn fuse_with(model: &mut TypedModel, options: &Options) -> TractResult<Fused> {
    let mut fused = Fused::default();
    // One match at a time: each patch changes node ids, so the search starts again after it.
    while let Some(patch) = pattern::dense_block(model, options)? {
        patch.apply(model)?;
        model.compact()?;
        fused.dense_blocks += 1;
    }
    while let Some(patch) = pattern::consecutive_blocks(model)? {
        patch.apply(model)?;
        model.compact()?;
    }
    if options.stem {
        while let Some(patch) = pattern::stem(model)? {
            patch.apply(model)?;
            model.compact()?;
            fused.stems += 1;
        }
    }
    Ok(fused)
}
