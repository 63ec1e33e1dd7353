//! The kernel tract runs for each of DenseNet-121's matrix products is the one measured fastest
//! on this CPU where there is a measurement (`src/model/kernels.rs`), and tract's own choice elsewhere.

mod common;

use common::*;
use densenet_lambda::model::kernels::{cpu, measured_choice, DENSENET121_PRODUCTS};
use densenet_lambda::model::{Model, ModelOptions, ModelSource};

/// `(m, k, n, kernel)` of every matrix product in the optimised plan, from tract's node
/// descriptions (`Mult: m:32 k:1152 n:3136 with [avx512_mmm_f32_32x6]`).
fn products(model: &Model) -> Vec<(usize, usize, usize, String)> {
    let mut out = vec![];
    for node in &model.plan().model().nodes {
        let info = node.op().info().unwrap_or_default().join("; ");
        let Some(at) = info.find("Mult: m:") else {
            continue;
        };
        let words: Vec<&str> = info[at..].split_whitespace().collect();
        let num = |w: &str, p: &str| w.strip_prefix(p).unwrap().parse::<usize>().unwrap();
        let kernel = words[5].trim_matches(|c| c == '[' || c == ']' || c == ';');
        out.push((
            num(words[1], "m:"),
            num(words[2], "k:"),
            num(words[3], "n:"),
            kernel.to_string(),
        ));
    }
    out
}

/// The ONNX file, and the NNEF archive `convert` makes of it (what a deployment embeds: tract
/// reads its products back in another layout, so both are checked).
fn sources() -> Vec<(ModelSource, std::path::PathBuf)> {
    let dir = std::env::temp_dir().join(format!("densenet-kernels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let nnef = dir.join("densenet121.nnef.tar");
    densenet_lambda::model::convert_to_nnef(&densenet(), &nnef).unwrap();
    vec![
        (ModelSource::File(densenet()), dir.clone()),
        (ModelSource::File(nnef), dir),
    ]
}

#[test]
fn densenet_products_run_the_measured_kernel() {
    let sources = sources();
    for (source, _) in &sources {
        check(source);
    }
    let _ = std::fs::remove_dir_all(&sources[0].1);
}

fn check(source: &ModelSource) {
    // tract's own operators throughout: the project's (`model::ops`) replace the dense blocks'
    // products, and what they leave is checked with them in tests/own_ops.rs.
    let options = ModelOptions {
        own_ops: false,
        ..ModelOptions::threads(1)
    };
    let model = Model::load(source, options).unwrap();
    let products = products(&model);
    eprintln!("{}", source.describe());
    assert!(products.len() >= 120, "{} products", products.len());
    eprintln!("cpu: {}", cpu());
    for (m, k, n, kernel) in &products {
        // The list of shapes is DenseNet-121's, complete: a change in tract's lowering shows here.
        assert!(
            *n == 1 || DENSENET121_PRODUCTS.contains(&(*m, *k, *n)),
            "({m}, {k}, {n}) is not in DENSENET121_PRODUCTS"
        );
        if let Some(measured) = measured_choice(*m, *k, *n) {
            assert_eq!(kernel, measured, "({m}, {k}, {n})");
        }
    }
    let measured = products
        .iter()
        .filter(|(m, k, n, _)| measured_choice(*m, *k, *n).is_some())
        .count();
    eprintln!(
        "{measured} of {} products on a measured kernel",
        products.len()
    );
}
