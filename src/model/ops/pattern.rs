//! Reading tract's decluttered graph into the operators' parameters.
//!
//! After tract's declutter, a batch norm in inference mode is a `Mul` by a constant and an `Add`
//! of a constant, each per channel (`[1, C, 1, 1]`; either is dropped when it is the identity,
//! and a batch norm right after a 3×3 or larger convolution is folded into its weights); a ReLU
//! is a `Max` with the constant 0; a 1×1 convolution without bias is the einsum `NIHW,OI->NOHW`;
//! a 3×3 convolution is tract's `Conv`; a concatenation is `TypedConcat`. A match is exact or it
//! is not a match: every node it replaces must feed nothing but the pattern (else its value is
//! needed anyway) and be no model output, every constant must be the shape it scales, and the
//! data must be f32 NCHW of a batch of one.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::TypedConcat;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::{
    Conv, KernelFormat, MaxPool, PaddingSpec, PoolSpec, SumPool,
};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::math::{Add, Max, Mul, Sub};
use tract_onnx::tract_hir::ops::nn::DataFormat;

use super::conv3x3::{Conv3x3, Conv3x3Method};
use super::dense_block::{DenseBlock, DenseLayer};
use super::dense_blocks::{DenseBlocks, Stage};
use super::gemm::PackedB;
use super::stem::{Stem, Window};
use super::transition::Transition;
use crate::model::rewrite::is_plain_2x2_average;

/// Choices the operators make when they replace nodes; the defaults are the ones measured
/// fastest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// How 3×3 convolutions are computed.
    pub conv3x3: Conv3x3Method,
    /// Whether the network's stem (first convolution, ReLU, max pool) joins the first dense
    /// blocks' operator ([`super::stem`]).
    pub stem: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            conv3x3: Conv3x3Method::default(),
            stem: true,
        }
    }
}

/// `x × scale + shift` per channel: what a chain of constant `Mul`s and `Add`s (a batch norm) is.
#[derive(Debug, Clone, PartialEq)]
pub struct Affine {
    /// Per channel.
    pub scale: Vec<f32>,
    /// Per channel.
    pub shift: Vec<f32>,
}

impl Affine {
    fn identity(channels: usize) -> Affine {
        Affine {
            scale: vec![1.0; channels],
            shift: vec![0.0; channels],
        }
    }
}

/// The node producing `outlet`, if it is its only output and feeds exactly one node, and is no
/// model output: a node a pattern may swallow.
fn private_node(model: &TypedModel, outlet: OutletId) -> TractResult<Option<&TypedNode>> {
    let node = model.node(outlet.node);
    if node.outputs.len() != 1
        || node.outputs[0].successors.len() != 1
        || model.output_outlets()?.contains(&outlet)
    {
        return Ok(None);
    }
    Ok(Some(node))
}

/// The f32 values of a constant outlet.
fn constant(model: &TypedModel, outlet: OutletId) -> TractResult<Option<Arc<Tensor>>> {
    let fact = model.outlet_fact(outlet)?;
    Ok(fact
        .konst
        .clone()
        .filter(|k| k.datum_type() == f32::datum_type()))
}

/// The values of a constant that applies per channel to `[1, channels, H, W]` data: shape
/// `[1, channels, 1, 1]` (or `[channels, 1, 1]`), or one value for all (`[1, 1, 1, 1]`, `[]`…).
fn per_channel(tensor: &Tensor, channels: usize) -> TractResult<Option<Vec<f32>>> {
    let shape = tensor.shape();
    let values = tensor.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
    if values.len() == 1 {
        return Ok(Some(vec![values[0]; channels]));
    }
    let along_channels = match shape {
        [1, c, 1, 1] | [c, 1, 1] => *c == channels,
        _ => false,
    };
    Ok(along_channels.then_some(values))
}

/// A ReLU node: `Max(x, 0)` with a constant zero. Returns `x`.
fn relu(model: &TypedModel, node: &TypedNode) -> TractResult<Option<OutletId>> {
    let Some(bin) = node.op_as::<TypedBinOp>() else {
        return Ok(None);
    };
    if !bin.0.is::<Max>() || node.inputs.len() != 2 {
        return Ok(None);
    }
    for (data, zero) in [(0, 1), (1, 0)] {
        if let Some(k) = constant(model, node.inputs[zero])? {
            let values = k.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
            if k.len() == 1 && values[0] == 0.0 && constant(model, node.inputs[data])?.is_none() {
                return Ok(Some(node.inputs[data]));
            }
        }
    }
    Ok(None)
}

/// Walks back from `outlet` through constant per-channel `Mul`/`Add`/`Sub` nodes (each private
/// to the chain) and returns where the chain starts and the affine map it computes.
fn affine_chain(
    model: &TypedModel,
    mut outlet: OutletId,
    channels: usize,
) -> TractResult<(OutletId, Affine, Vec<usize>)> {
    let mut steps: Vec<(char, Vec<f32>)> = vec![];
    let mut nodes = vec![];
    loop {
        let Some(node) = private_node(model, outlet)? else {
            break;
        };
        let Some(bin) = node.op_as::<TypedBinOp>() else {
            break;
        };
        let kind = if bin.0.is::<Mul>() {
            '*'
        } else if bin.0.is::<Add>() {
            '+'
        } else if bin.0.is::<Sub>() {
            '-'
        } else {
            break;
        };
        if node.inputs.len() != 2 {
            break;
        }
        // The constant may be either operand, but `x - c` only as written.
        let found = [(0, 1), (1, 0)].into_iter().find_map(|(data, k)| {
            let konst = constant(model, node.inputs[k]).ok().flatten()?;
            (kind != '-' || k == 1).then_some((data, konst))
        });
        let Some((data, konst)) = found else {
            break;
        };
        if constant(model, node.inputs[data])?.is_some() {
            break;
        }
        let Some(values) = per_channel(&konst, channels)? else {
            break;
        };
        steps.push((kind, values));
        nodes.push(node.id);
        outlet = node.inputs[data];
    }
    let mut affine = Affine::identity(channels);
    for (kind, values) in steps.iter().rev() {
        let channels = affine.scale.iter_mut().zip(&mut affine.shift).zip(values);
        for ((scale, shift), &value) in channels {
            match kind {
                '*' => {
                    *scale *= value;
                    *shift *= value;
                }
                '+' => *shift += value,
                _ => *shift -= value,
            }
        }
    }
    Ok((outlet, affine, nodes))
}

/// `[1, channels, height, width]` f32, if `outlet` is that.
fn nchw(model: &TypedModel, outlet: OutletId) -> TractResult<Option<[usize; 4]>> {
    let fact = model.outlet_fact(outlet)?;
    if fact.datum_type != f32::datum_type() {
        return Ok(None);
    }
    Ok(match fact.shape.as_concrete() {
        Some(&[1, c, h, w]) => Some([1, c, h, w]),
        _ => None,
    })
}

/// One dense layer read back from its 3×3 convolution's node: its input outlet, its parameters
/// and the nodes it is made of.
fn dense_layer(
    model: &TypedModel,
    conv_node: &TypedNode,
) -> TractResult<Option<(OutletId, LayerParts, Vec<usize>)>> {
    // The 3×3 convolution: f32, NCHW, stride 1, padding 1, one group, constant weights.
    let Some(conv) = conv_node.op_as::<Conv>() else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    let ones = |v: &Option<TVec<usize>>| v.as_deref().is_none_or(|v| v.iter().all(|&x| x == 1));
    let padded = match &spec.padding {
        PaddingSpec::Explicit(b, a) => b.as_slice() == [1, 1] && a.as_slice() == [1, 1],
        PaddingSpec::SameUpper | PaddingSpec::SameLower => true,
        _ => false,
    };
    if conv.q_params.is_some()
        || conv.group != 1
        || conv.kernel_fmt != KernelFormat::OIHW
        || spec.data_format != DataFormat::NCHW
        || *spec.kernel_shape != [3, 3]
        || !ones(&spec.strides)
        || !ones(&spec.dilations)
        || !padded
        || conv_node.inputs.len() != 3
    {
        return Ok(None);
    }
    let (Some(kernel), Some(conv_bias)) = (
        constant(model, conv_node.inputs[1])?,
        constant(model, conv_node.inputs[2])?,
    ) else {
        return Ok(None);
    };
    let (growth, bottleneck) = (spec.output_channels, spec.input_channels);
    if kernel.shape() != [growth, bottleneck, 3, 3] {
        return Ok(None);
    }
    let Some([_, _, height, width]) = nchw(model, conv_node.inputs[0])? else {
        return Ok(None);
    };
    let Some(conv_bias) = per_channel(&conv_bias, growth)? else {
        return Ok(None);
    };
    let mut nodes = vec![];

    // Its input: ReLU ← batch norm ← the 1×1 convolution.
    let Some(relu2) = private_node(model, conv_node.inputs[0])? else {
        return Ok(None);
    };
    let Some(before_relu2) = relu(model, relu2)? else {
        return Ok(None);
    };
    nodes.push(relu2.id);
    let (pointwise_out, norm2, norm2_nodes) = affine_chain(model, before_relu2, bottleneck)?;
    nodes.extend(norm2_nodes);
    let Some(pointwise_node) = private_node(model, pointwise_out)? else {
        return Ok(None);
    };
    let Some((pointwise_in, weights)) = pointwise_conv(model, pointwise_node)? else {
        return Ok(None);
    };
    let inputs = match weights.shape() {
        &[o, i] if o == bottleneck => i,
        _ => return Ok(None),
    };
    nodes.push(pointwise_node.id);

    // Its input: ReLU ← batch norm ← the layer's input.
    let Some(relu1) = private_node(model, pointwise_in)? else {
        return Ok(None);
    };
    let Some(before_relu1) = relu(model, relu1)? else {
        return Ok(None);
    };
    nodes.push(relu1.id);
    let (input, norm1, norm1_nodes) = affine_chain(model, before_relu1, inputs)?;
    nodes.extend(norm1_nodes);
    if nchw(model, input)?.is_none_or(|[_, c, _, _]| c != inputs) {
        return Ok(None);
    }

    let parts = LayerParts {
        norm1,
        inputs,
        pointwise: weights,
        norm2,
        kernel,
        conv_bias,
        size: (height, width),
    };
    Ok(Some((input, parts, nodes)))
}

/// A dense layer's parameters as read from the graph, before the weights are packed (which
/// costs a few milliseconds a layer: done only once the whole block has matched).
struct LayerParts {
    norm1: Affine,
    inputs: usize,
    /// `[bottleneck, inputs]`.
    pointwise: Arc<Tensor>,
    norm2: Affine,
    /// `[growth, bottleneck, 3, 3]`.
    kernel: Arc<Tensor>,
    conv_bias: Vec<f32>,
    size: (usize, usize),
}

impl LayerParts {
    fn build(self, options: &Options) -> TractResult<DenseLayer> {
        let (inputs, bottleneck, growth) =
            (self.inputs, self.norm2.scale.len(), self.conv_bias.len());
        let weights = self.pointwise.try_as_plain_ram()?.as_slice::<f32>()?;
        let kernel = self.kernel.try_as_plain_ram()?.as_slice::<f32>()?;
        let norm2 = &self.norm2;
        Ok(DenseLayer {
            scale: self.norm1.scale,
            shift: self.norm1.shift,
            pointwise: PackedB::new(inputs, bottleneck, |i, o| {
                weights[o * inputs + i] * norm2.scale[o]
            }),
            pointwise_bias: self.norm2.shift,
            conv: Conv3x3::new(options.conv3x3, kernel, growth, bottleneck, self.size),
            conv_bias: self.conv_bias,
        })
    }
}

/// The weights `[outputs, inputs]` of a 1×1 convolution without bias as tract declutters it,
/// with its input: an f32 einsum of constant weights `[O, I]` and data `[N, I, H, W]` into
/// `[N, O, H, W]`, whatever its axes are called and in either operand order (`NIHW,OI->NOHW`
/// from ONNX, `mk,akbn->ambn` from an NNEF archive).
fn pointwise_conv(
    model: &TypedModel,
    node: &TypedNode,
) -> TractResult<Option<(OutletId, Arc<Tensor>)>> {
    let Some(einsum) = node.op_as::<EinSum>() else {
        return Ok(None);
    };
    if einsum.q_params.is_some()
        || einsum.operating_dt != f32::datum_type()
        || node.inputs.len() != 2
    {
        return Ok(None);
    }
    let axes = einsum.axes.to_string();
    let Some((operands, output)) = axes.split_once("->") else {
        return Ok(None);
    };
    let Some((first, second)) = operands.split_once(',') else {
        return Ok(None);
    };
    let letters = |s: &str| s.chars().collect::<Vec<char>>();
    let (first, second, output) = (letters(first), letters(second), letters(output));
    for (weights_at, [w, x]) in [(1, [&second, &first]), (0, [&first, &second])] {
        let (&[o, i], &[n, xi, h, wd]) = (w.as_slice(), x.as_slice()) else {
            continue;
        };
        let distinct = [o, n, i, h, wd]
            .iter()
            .enumerate()
            .all(|(a, c)| [o, n, i, h, wd][..a].iter().all(|d| d != c));
        if !distinct || xi != i || output != [n, o, h, wd] {
            continue;
        }
        let Some(weights) = constant(model, node.inputs[weights_at])? else {
            continue;
        };
        if weights.rank() != 2 || constant(model, node.inputs[1 - weights_at])?.is_some() {
            continue;
        }
        return Ok(Some((node.inputs[1 - weights_at], weights)));
    }
    Ok(None)
}

/// The node fed by `outlet` if it is the only one and `outlet` is no model output.
fn only_successor(model: &TypedModel, outlet: OutletId) -> TractResult<Option<&TypedNode>> {
    let successors = &model.node(outlet.node).outputs[outlet.slot].successors;
    if successors.len() != 1 || model.output_outlets()?.contains(&outlet) {
        return Ok(None);
    }
    Ok(Some(model.node(successors[0].node)))
}

/// The transition that takes `x` (a dense block's output of `channels` channels): batch norm,
/// ReLU, then a 2×2 average pool of stride 2 and a 1×1 convolution in either order (they
/// commute). Returns it and the outlet of its result.
fn transition_after(
    model: &TypedModel,
    x: OutletId,
    channels: usize,
) -> TractResult<Option<(Transition, OutletId)>> {
    // Forward through the batch norm's constant Mul/Add nodes to the ReLU.
    let mut at = x;
    let relu_node = loop {
        let Some(next) = only_successor(model, at)? else {
            return Ok(None);
        };
        match next.op_as::<TypedBinOp>() {
            Some(bin) if bin.0.is::<Max>() => break next,
            Some(bin) if bin.0.is::<Mul>() || bin.0.is::<Add>() || bin.0.is::<Sub>() => {
                at = OutletId::new(next.id, 0);
            }
            _ => return Ok(None),
        }
    };
    let Some(before_relu) = relu(model, relu_node)? else {
        return Ok(None);
    };
    let (start, norm, _) = affine_chain(model, before_relu, channels)?;
    if start != x {
        return Ok(None);
    }
    // Pool then convolution, or convolution then pool.
    let Some(first) = only_successor(model, OutletId::new(relu_node.id, 0))? else {
        return Ok(None);
    };
    let pool_ok = |node: &TypedNode| {
        node.op_as::<SumPool>().is_some_and(|pool| {
            is_plain_2x2_average(pool)
                && pool.pool_spec.input_channels == pool.pool_spec.output_channels
        })
    };
    let (weights, end) = if pool_ok(first) {
        let Some(conv) = only_successor(model, OutletId::new(first.id, 0))? else {
            return Ok(None);
        };
        match pointwise_conv(model, conv)? {
            Some((_, weights)) => (weights, OutletId::new(conv.id, 0)),
            None => return Ok(None),
        }
    } else {
        let Some((_, weights)) = pointwise_conv(model, first)? else {
            return Ok(None);
        };
        let Some(pool) = only_successor(model, OutletId::new(first.id, 0))? else {
            return Ok(None);
        };
        if !pool_ok(pool) {
            return Ok(None);
        }
        (weights, OutletId::new(pool.id, 0))
    };
    let outputs = match weights.shape() {
        &[o, i] if i == channels => o,
        _ => return Ok(None),
    };
    let weights = weights.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
    let transition = Transition {
        scale: norm.scale,
        shift: norm.shift,
        conv: PackedB::new(channels, outputs, |i, o| weights[o * channels + i]),
    };
    Ok(Some((transition, end)))
}

/// The first dense block of the model, as a patch running it as one [`DenseBlock`]; `None` when
/// no block matches exactly.
///
/// A block is a concatenation `[x, y1, …, yL]` along channels where each `yl` is a dense layer
/// (batch norm, ReLU, 1×1 convolution, batch norm, ReLU, 3×3 convolution) of the
/// concatenation `[x, y1, …, y(l-1)]` (of `x` itself for the first), each of those
/// concatenations feeding nothing but its layer, and each `yl` feeding nothing but the block's
/// concatenations.
pub fn dense_block(model: &TypedModel, options: &Options) -> TractResult<Option<TypedModelPatch>> {
    for node in model.nodes() {
        let Some(concat) = node.op_as::<TypedConcat>() else {
            continue;
        };
        if concat.axis != 1 || node.inputs.len() < 2 {
            continue;
        }
        if let Some(patch) = block_ending_at(model, node, options)? {
            return Ok(Some(patch));
        }
    }
    Ok(None)
}

/// The dense block whose last concatenation is `last`, if it is one.
fn block_ending_at(
    model: &TypedModel,
    last: &TypedNode,
    options: &Options,
) -> TractResult<Option<TypedModelPatch>> {
    let x = last.inputs[0];
    let Some([_, inputs, height, width]) = nchw(model, x)? else {
        return Ok(None);
    };
    let outputs = &last.inputs[1..];
    let mut layers = Vec::with_capacity(outputs.len());
    // The block's concatenations other than `last`, and their inputs.
    let mut concats: Vec<usize> = vec![last.id];
    for (l, &y) in outputs.iter().enumerate() {
        if y.slot != 0 || model.node(y.node).outputs.len() != 1 {
            return Ok(None);
        }
        let Some((input, layer, _)) = dense_layer(model, model.node(y.node))? else {
            return Ok(None);
        };
        if l == 0 {
            if input != x {
                return Ok(None);
            }
        } else {
            let concat = model.node(input.node);
            let ok = concat.op_as::<TypedConcat>().is_some_and(|c| c.axis == 1)
                && input.slot == 0
                && concat.inputs.as_slice() == &last.inputs[..l + 1]
                && private_node(model, input)?.is_some();
            if !ok {
                return Ok(None);
            }
            concats.push(concat.id);
        }
        layers.push(layer);
    }
    // Each new channel's node feeds the block's concatenations only.
    for &y in outputs {
        let successors = &model.node(y.node).outputs[0].successors;
        if model.output_outlets()?.contains(&y)
            || successors.iter().any(|s| !concats.contains(&s.node))
        {
            return Ok(None);
        }
    }
    let layers = layers
        .into_iter()
        .map(|parts| parts.build(options))
        .collect::<TractResult<Vec<_>>>()?;
    let block = DenseBlock {
        inputs,
        height,
        width,
        layers,
    };
    let channels = block.outputs();
    let mut stage = Stage {
        block,
        transition: None,
    };
    let mut end = OutletId::new(last.id, 0);
    if let Some((transition, after)) = transition_after(model, end, channels)? {
        stage.transition = Some(transition);
        // Only where the pool's output is what the stage computes (tract's pool of an image
        // smaller than its window, say, is not).
        let (c, h, w) = stage.output();
        if nchw(model, after)? == Some([1, c, h, w]) {
            end = after;
        } else {
            stage.transition = None;
        }
    }
    let op = DenseBlocks {
        stem: None,
        stages: vec![Arc::new(stage)],
    };
    if op.check().is_err() {
        return Ok(None);
    }
    let mut patch = TypedModelPatch::new("dense block");
    let input = patch.tap_model(model, x)?;
    let out = patch.wire_node(format!("{}.dense_block", last.name), op, &[input])?;
    patch.shunt_outside(model, end, out[0])?;
    Ok(Some(patch))
}

/// The first pair of consecutive [`DenseBlocks`] (the first's output feeding nothing but the
/// second), as a patch running them as one.
pub fn consecutive_blocks(model: &TypedModel) -> TractResult<Option<TypedModelPatch>> {
    for node in model.nodes() {
        let Some(second) = node.op_as::<DenseBlocks>() else {
            continue;
        };
        let before = model.node(node.inputs[0].node);
        let Some(first) = before.op_as::<DenseBlocks>() else {
            continue;
        };
        if second.stem.is_some() {
            continue;
        }
        if only_successor(model, node.inputs[0])?.is_none() {
            continue;
        }
        let merged = DenseBlocks {
            stem: first.stem.clone(),
            stages: first.stages.iter().chain(&second.stages).cloned().collect(),
        };
        if merged.check().is_err() {
            continue;
        }
        let mut patch = TypedModelPatch::new("consecutive dense blocks");
        let input = patch.tap_model(model, before.inputs[0])?;
        let out = patch.wire_node(format!("{}.merged", node.name), merged, &[input])?;
        patch.shunt_outside(model, OutletId::new(node.id, 0), out[0])?;
        return Ok(Some(patch));
    }
    Ok(None)
}

/// A square window of `spec` over NCHW data of `size` (height, width), if it is one: equal
/// sides and strides, no dilation, the same padding before the rows as before the columns
/// (explicit, without ONNX's `ceil_mode`, or tract's `Same…` for it). The padding after is
/// what the output's size implies: the caller checks that size against tract's.
fn square_window(spec: &PoolSpec, size: (usize, usize)) -> Option<Window> {
    let &[side, other] = spec.kernel_shape.as_slice() else {
        return None;
    };
    let stride = match spec.strides.as_deref() {
        None => 1,
        Some(&[a, b]) if a == b => a,
        _ => return None,
    };
    // `Same…`: the output is the input divided by the stride, rounded up; the padding that
    // takes is split evenly, its odd one after (`SameUpper`) or before (`SameLower`).
    let same = |input: usize, upper: bool| {
        let total = ((input.div_ceil(stride.max(1)) - 1) * stride + side).saturating_sub(input);
        if upper {
            total / 2
        } else {
            total - total / 2
        }
    };
    // The padding before, the same on both axes; explicit padding also the same after (the
    // window's count assumes it), `Same…` padding's after is what the output's size implies.
    let padding = match &spec.padding {
        PaddingSpec::Valid => 0,
        PaddingSpec::Explicit(b, a) | PaddingSpec::ExplicitOnnxPool(b, a, false) => {
            let p = *b.first()?;
            let even = b.len() == 2 && a.len() == 2 && b.iter().chain(a).all(|&x| x == p);
            even.then_some(p)?
        }
        PaddingSpec::SameUpper | PaddingSpec::SameLower => {
            let upper = spec.padding == PaddingSpec::SameUpper;
            let (rows, columns) = (same(size.0, upper), same(size.1, upper));
            (rows == columns).then_some(rows)?
        }
        _ => return None,
    };
    let undilated = spec
        .dilations
        .as_deref()
        .is_none_or(|d| d.iter().all(|&x| x == 1));
    (side == other && undilated && spec.data_format == DataFormat::NCHW).then_some(Window {
        size: side,
        stride,
        padding,
    })
}

/// The first [`DenseBlocks`] without a stem whose input is a stem (a convolution of the image
/// with its batch norm, ReLU, then a max pool), as a patch running that too: the network's first
/// nodes, from the image on.
pub fn stem(model: &TypedModel) -> TractResult<Option<TypedModelPatch>> {
    for node in model.nodes() {
        let Some(blocks) = node.op_as::<DenseBlocks>() else {
            continue;
        };
        if blocks.stem.is_some() {
            continue;
        }
        let Some((input, stem)) = stem_before(model, node.inputs[0])? else {
            continue;
        };
        let op = DenseBlocks {
            stem: Some(Arc::new(stem)),
            stages: blocks.stages.clone(),
        };
        if op.check().is_err() {
            continue;
        }
        let mut patch = TypedModelPatch::new("stem");
        let wire = patch.tap_model(model, input)?;
        let out = patch.wire_node(format!("{}.stem", node.name), op, &[wire])?;
        patch.shunt_outside(model, OutletId::new(node.id, 0), out[0])?;
        return Ok(Some(patch));
    }
    Ok(None)
}

/// The stem whose output is `x`, and its input: `MaxPool ← ReLU ← (batch norm) ← Conv`, each
/// node private to the chain.
fn stem_before(model: &TypedModel, x: OutletId) -> TractResult<Option<(OutletId, Stem)>> {
    let Some(pool_node) = private_node(model, x)? else {
        return Ok(None);
    };
    let Some(pool) = pool_node.op_as::<MaxPool>() else {
        return Ok(None);
    };
    if pool.with_index_outputs.is_some() || pool_node.inputs.len() != 1 {
        return Ok(None);
    }
    let Some([_, _, conv_height, conv_width]) = nchw(model, pool_node.inputs[0])? else {
        return Ok(None);
    };
    let Some(pool_window) = square_window(&pool.pool_spec, (conv_height, conv_width)) else {
        return Ok(None);
    };
    let Some(relu_node) = private_node(model, pool_node.inputs[0])? else {
        return Ok(None);
    };
    let Some(before_relu) = relu(model, relu_node)? else {
        return Ok(None);
    };
    let Some([_, outputs, _, _]) = nchw(model, before_relu)? else {
        return Ok(None);
    };
    let (conv_out, norm, _) = affine_chain(model, before_relu, outputs)?;
    let Some(conv_node) = private_node(model, conv_out)? else {
        return Ok(None);
    };
    let Some(conv) = conv_node.op_as::<Conv>() else {
        return Ok(None);
    };
    let Some([_, channels, height, width]) = nchw(model, conv_node.inputs[0])? else {
        return Ok(None);
    };
    let Some(window) = square_window(&conv.pool_spec, (height, width)) else {
        return Ok(None);
    };
    if conv.q_params.is_some()
        || conv.group != 1
        || conv.kernel_fmt != KernelFormat::OIHW
        || conv.pool_spec.output_channels != outputs
        || !(2..=3).contains(&conv_node.inputs.len())
    {
        return Ok(None);
    }
    let Some(kernel) = constant(model, conv_node.inputs[1])? else {
        return Ok(None);
    };
    let side = window.size;
    if kernel.shape() != [outputs, channels, side, side] {
        return Ok(None);
    }
    // The bias: one value per output channel (`[C]`, as tract's `Conv` has it), or one for all.
    // Not in `per_channel`: there a `[C]` operand of a binary op would broadcast along the width.
    let conv_bias = match conv_node.inputs.get(2) {
        Some(&bias) => match constant(model, bias)? {
            Some(bias) if bias.shape() == [outputs] => {
                Some(bias.try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
            }
            Some(bias) => per_channel(&bias, outputs)?,
            None => None,
        },
        None => Some(vec![0.0; outputs]),
    };
    let Some(conv_bias) = conv_bias else {
        return Ok(None);
    };
    let kernel = kernel.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
    let k = side * side * channels;
    let stem = Stem {
        channels,
        size: (height, width),
        conv: window,
        weights: PackedB::new(k, outputs, |row, o| {
            let (ky, kx, c) = (
                row / (side * channels),
                row / channels % side,
                row % channels,
            );
            kernel[((o * channels + c) * side + ky) * side + kx] * norm.scale[o]
        }),
        bias: (0..outputs)
            .map(|o| conv_bias[o] * norm.scale[o] + norm.shift[o])
            .collect(),
        pool: pool_window,
    };
    // The graph's shapes are what the stem computes (tract's, not this module's, arithmetic).
    let fits = stem.check().is_ok()
        && stem
            .conv_size()
            .is_some_and(|(h, w)| nchw(model, conv_out).ok().flatten() == Some([1, outputs, h, w]))
        && stem
            .output_size()
            .is_some_and(|(h, w)| nchw(model, x).ok().flatten() == Some([1, outputs, h, w]));
    Ok(fits.then_some((conv_node.inputs[0], stem)))
}
