//! Rewrites of the decluttered graph that do less arithmetic for the same answer, applied when a
//! model is loaded (ONNX or NNEF alike) before tract optimises it.
//!
//! tract runs the graph as written. DenseNet-121's three transition layers are
//! `BN → ReLU → 1×1 convolution → 2×2 average pool, stride 2`: the pool and the convolution are
//! both linear maps acting on different axes (the convolution mixes channels at each pixel, the
//! pool averages pixels of each channel), so they commute exactly, and pooling first runs the
//! convolution on a quarter of the pixels. Over the three transitions that is 0.46 of
//! DenseNet-121's 5.7 GFLOP. Only the floating-point rounding changes (logits within 1e-4 on the
//! reference tensors: `tests/graph_rewrite.rs`).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::{PaddingSpec, SumPool};
use tract_onnx::tract_core::ops::einsum::EinSum;

/// What [`rewrite`] changed, for the load log line and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rewrites {
    /// Average pools moved before the 1×1 convolution that fed them.
    pub pools_before_pointwise_conv: usize,
}

/// Applies every rewrite of this module to a decluttered model, in place.
pub fn rewrite(model: &mut TypedModel) -> TractResult<Rewrites> {
    let mut done = Rewrites::default();
    // One match at a time: each patch changes node ids, so the search starts again after it.
    while let Some(patch) = pool_before_pointwise_conv(model)? {
        patch.apply(model)?;
        done.pools_before_pointwise_conv += 1;
    }
    if done != Rewrites::default() {
        model.compact()?;
    }
    Ok(done)
}

/// The first `1×1 convolution → 2×2/2 average pool` pair of the model, as a patch computing
/// `pool → convolution` instead; `None` when no pair matches exactly.
///
/// After tract's declutter a 1×1 convolution without bias, stride 1, padding 0, dilation 1 and
/// one group is the float einsum `NIHW,OI->NOHW` with constant weights: that is the form matched
/// here, which is every such convolution and nothing else. The pool must be an averaging
/// `SumPool` (normalised) with a 2×2 kernel, stride 2, no dilation and no padding (so
/// `count_include_pad` has nothing to count), on NCHW data, and the convolution's output must
/// feed nothing but the pool (else its full-size result is needed anyway) nor be a model output.
fn pool_before_pointwise_conv(model: &TypedModel) -> TractResult<Option<TypedModelPatch>> {
    for pool_node in model.nodes() {
        let Some(pool) = pool_node.op_as::<SumPool>() else {
            continue;
        };
        if !is_plain_2x2_average(pool) {
            continue;
        }
        let conv_outlet = pool_node.inputs[0];
        let conv_node = model.node(conv_outlet.node);
        let Some(einsum) = conv_node.op_as::<EinSum>() else {
            continue;
        };
        if einsum.q_params.is_some()
            || einsum.operating_dt != f32::datum_type()
            || einsum.axes.to_string() != "NIHW,OI->NOHW"
            || conv_node.inputs.len() != 2
            || conv_node.outputs.len() != 1
            || conv_node.outputs[0].successors.len() != 1
            || model.output_outlets()?.contains(&conv_outlet)
        {
            continue;
        }
        let input_fact = model.outlet_fact(conv_node.inputs[0])?;
        let weights = model.outlet_fact(conv_node.inputs[1])?;
        if weights.konst.is_none() || input_fact.datum_type != f32::datum_type() {
            continue;
        }
        let Some(&[_, channels, _, _]) = input_fact.shape.as_concrete() else {
            continue;
        };

        let mut patch = TypedModelPatch::new("pool before 1x1 convolution");
        let input = patch.tap_model(model, conv_node.inputs[0])?;
        let filters = patch.tap_model(model, conv_node.inputs[1])?;
        let mut pooled_op = pool.clone();
        pooled_op.pool_spec.input_channels = channels;
        pooled_op.pool_spec.output_channels = channels;
        let pooled = patch.wire_node(
            format!("{}.before_conv", pool_node.name),
            pooled_op,
            &[input],
        )?;
        let convolved = patch.wire_node(
            format!("{}.after_pool", conv_node.name),
            einsum.clone(),
            &[pooled[0], filters],
        )?;
        patch.shunt_outside(model, OutletId::new(pool_node.id, 0), convolved[0])?;
        return Ok(Some(patch));
    }
    Ok(None)
}

/// A normalised 2×2 average pool of stride 2 without padding or dilation, on NCHW data.
pub fn is_plain_2x2_average(pool: &SumPool) -> bool {
    let spec = &pool.pool_spec;
    let no_padding = match &spec.padding {
        PaddingSpec::Valid => true,
        PaddingSpec::Explicit(before, after) => before.iter().chain(after.iter()).all(|&p| p == 0),
        PaddingSpec::ExplicitOnnxPool(before, after, ceil) => {
            !ceil && before.iter().chain(after.iter()).all(|&p| p == 0)
        }
        PaddingSpec::SameUpper | PaddingSpec::SameLower => false,
    };
    pool.normalize
        && no_padding
        && format!("{:?}", spec.data_format) == "NCHW"
        && *spec.kernel_shape == [2, 2]
        && spec.strides.as_deref() == Some(&[2, 2][..])
        && spec
            .dilations
            .as_deref()
            .is_none_or(|d| d.iter().all(|&x| x == 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::PoolSpec;
    use tract_onnx::tract_hir::ops::nn::DataFormat;

    /// `x → einsum(1×1) → pool` on a small input, with `pool` and `einsum` as given.
    fn model(pool: SumPool, expr: &str, side: usize) -> TractResult<TypedModel> {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 4, side, side]))?;
        let w = model.add_const(
            "w",
            Tensor::from_shape(
                &[3, 4],
                &(0..12).map(|i| i as f32 - 5.5).collect::<Vec<_>>(),
            )?,
        )?;
        let y = model.wire_node(
            "conv",
            EinSum::new(expr.parse()?, f32::datum_type()),
            &[x, w],
        )?;
        let z = model.wire_node("pool", pool, &y)?;
        model.select_output_outlets(&z)?;
        Ok(model)
    }

    fn average(kernel: usize, stride: usize, padding: PaddingSpec) -> SumPool {
        SumPool {
            pool_spec: PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec![kernel, kernel],
                padding,
                dilations: None,
                strides: Some(tvec![stride, stride]),
                input_channels: 3,
                output_channels: 3,
            },
            count_include_pad: false,
            normalize: true,
        }
    }

    fn run(model: &TypedModel, side: usize) -> TractResult<Tensor> {
        let input = Tensor::from_shape(
            &[1, 4, side, side],
            &(0..4 * side * side)
                .map(|i| ((i * 37) % 101) as f32 / 10.0)
                .collect::<Vec<_>>(),
        )?;
        let plan = model.clone().into_runnable()?;
        Ok(plan.run(tvec!(input.into()))?.remove(0).into_tensor())
    }

    #[test]
    fn the_transition_pattern_is_rewritten_and_answers_the_same() -> TractResult<()> {
        let side = 6;
        let original = model(average(2, 2, PaddingSpec::Valid), "NIHW,OI->NOHW", side)?;
        let mut rewritten = original.clone();
        let done = rewrite(&mut rewritten)?;
        assert_eq!(done.pools_before_pointwise_conv, 1);
        // The pool now reads the model's input and the einsum reads the pool.
        let pool = rewritten
            .nodes()
            .iter()
            .find(|n| n.op_is::<SumPool>())
            .unwrap();
        assert_eq!(pool.inputs[0], rewritten.input_outlets()?[0]);
        assert_eq!(pool.op_as::<SumPool>().unwrap().pool_spec.input_channels, 4);
        let (a, b) = (run(&original, side)?, run(&rewritten, side)?);
        assert_eq!(a.shape(), &[1, 3, 3, 3]);
        a.close_enough(&b, true)?;
        // Nothing left to match: a second pass changes nothing.
        assert_eq!(rewrite(&mut rewritten)?, Rewrites::default());
        Ok(())
    }

    #[test]
    fn other_pools_and_products_are_left_alone() -> TractResult<()> {
        for (pool, expr) in [
            (average(3, 2, PaddingSpec::Valid), "NIHW,OI->NOHW"),
            (average(2, 1, PaddingSpec::Valid), "NIHW,OI->NOHW"),
            (
                average(2, 2, PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1])),
                "NIHW,OI->NOHW",
            ),
            (
                SumPool {
                    normalize: false,
                    ..average(2, 2, PaddingSpec::Valid)
                },
                "NIHW,OI->NOHW",
            ),
            // The output axes transposed: not the convolution's layout.
            (average(2, 2, PaddingSpec::Valid), "NIHW,OI->NOWH"),
        ] {
            let mut m = model(pool, expr, 6)?;
            assert_eq!(rewrite(&mut m)?, Rewrites::default(), "{expr}");
        }
        // The convolution's output also feeds something else: keep it.
        let mut m = model(average(2, 2, PaddingSpec::Valid), "NIHW,OI->NOHW", 6)?;
        let conv = m.node_by_name("conv")?.id;
        let outputs = [m.output_outlets()?[0], OutletId::new(conv, 0)];
        m.select_output_outlets(&outputs)?;
        assert_eq!(rewrite(&mut m)?, Rewrites::default());
        Ok(())
    }
}
