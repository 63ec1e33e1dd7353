//! Pooling before the 1×1 convolutions of DenseNet-121's transitions (`src/model/rewrite.rs`)
//! changes the arithmetic, not the answer: logits within 1e-4 of the graph as written, on every
//! reference tensor.

mod common;

use common::*;
use densenet_lambda::model::decluttered_from_onnx;
use densenet_lambda::model::rewrite::{rewrite, Rewrites};
use tract_onnx::prelude::*;

/// The graph as the ONNX file writes it, decluttered by tract and nothing else.
fn as_written(path: std::path::PathBuf) -> TypedModel {
    tract_onnx::onnx()
        .model_for_path(path)
        .unwrap()
        .with_input_fact(0, f32::fact([1, 3, 224, 224]).into())
        .unwrap()
        .into_typed()
        .unwrap()
        .into_decluttered()
        .unwrap()
}

fn plan(model: TypedModel) -> std::sync::Arc<TypedRunnableModel> {
    model.into_optimized().unwrap().into_runnable().unwrap()
}

fn logits(plan: &std::sync::Arc<TypedRunnableModel>, name: &str) -> Vec<f32> {
    let input = Tensor::from_shape(&[1, 3, 224, 224], &read_npy_f32(name)).unwrap();
    let out = plan.run(tvec!(input.into())).unwrap();
    out[0]
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

#[test]
fn densenet_transitions_pool_first_with_the_same_logits() {
    let decluttered = as_written(densenet());
    let mut rewritten = decluttered.clone();
    let done = rewrite(&mut rewritten).unwrap();
    // DenseNet-121 has three transition layers, and nothing else matches.
    assert_eq!(
        done,
        Rewrites {
            pools_before_pointwise_conv: 3
        }
    );
    // Each transition's pool now reads the ReLU, at the convolution's input width.
    let pools: Vec<_> = rewritten
        .nodes()
        .iter()
        .filter(|n| n.name.contains("transition") && n.op().name() == "SumPool")
        .collect();
    assert_eq!(pools.len(), 3);
    for (pool, channels) in pools.iter().zip([256, 512, 1024]) {
        let input = rewritten.outlet_fact(pool.inputs[0]).unwrap();
        assert_eq!(
            input.shape.as_concrete().unwrap()[1],
            channels,
            "{}",
            pool.name
        );
        assert_eq!(rewritten.node(pool.inputs[0].node).op().name(), "Max");
    }
    // Loading (and `convert`) applies it: the graph it gives is the one rewritten here.
    let loaded = decluttered_from_onnx(&std::fs::read(densenet()).unwrap()).unwrap();
    assert_eq!(loaded.nodes().len(), rewritten.nodes().len());
    assert_eq!(
        loaded
            .nodes()
            .iter()
            .filter(|n| n.name.ends_with(".before_conv"))
            .count(),
        3
    );
    let (before, after) = (plan(decluttered), plan(rewritten));
    for (name, _) in SAMPLES {
        let (a, b) = (logits(&before, name), logits(&after, name));
        let diff = max_abs(&a, &b);
        eprintln!("{name}: logits max abs difference {diff:.2e}");
        assert!(diff <= 1e-4, "{name}: {diff}");
        let reference = reference_logits(name, "densenet121_untrained_seed0");
        let to_reference = max_abs(&b, &reference);
        assert!(
            to_reference <= 1e-3,
            "{name} vs onnxruntime: {to_reference}"
        );
    }
}

#[test]
fn efficientnet_has_nothing_to_rewrite() {
    let mut model = as_written(efficientnet());
    assert_eq!(rewrite(&mut model).unwrap(), Rewrites::default());
}
