//! Where tract's inference time goes, per operator kind: the evidence behind the README's
//! "what stands in the way" of the inference goal.
//!
//!     cargo run --release --example profile_ops -- [MODEL.onnx|MODEL.nnef.tar] [ITERS] [THREADS]
//!
//! Loads the model as the service does, runs it ITERS times (default 20) on a fixed input, and
//! prints per operator kind the median total milliseconds per inference and the share of it.
//! `PROFILE_NODES=N` also lists the N slowest nodes with tract's description (matmul shapes and
//! the kernel chosen); `PROFILE_BY_SHAPE=1` splits each kind by output shape.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use densenet_lambda::model::{Model, ModelOptions, ModelSource};
use tract_onnx::prelude::*;

fn main() -> TractResult<()> {
    let mut args = std::env::args().skip(1);
    let model_path = args.next().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/model/densenet121_untrained_seed0.onnx")
    });
    let iters: usize = args.next().map_or(20, |s| s.parse().expect("ITERS"));
    let threads: usize = args.next().map_or(1, |s| s.parse().expect("THREADS"));
    let model = Model::load(
        &ModelSource::File(model_path),
        ModelOptions::threads(threads),
    )
    .map_err(|e| TractError::msg(e.to_string()))?;
    let plan = model.plan();
    let input: TValue = Tensor::from_shape(
        &[1, 3, 224, 224],
        &(0..3 * 224 * 224)
            .map(|i| ((i % 251) as f32 / 125.0) - 1.0)
            .collect::<Vec<_>>(),
    )?
    .into();

    // per op kind: one Vec of per-iteration totals (ms)
    let mut per_kind: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    // per node: one Vec of per-iteration times (ms)
    let mut per_node: Vec<Vec<f64>> = vec![vec![]; plan.model().nodes.len()];
    let mut totals = vec![];
    for _ in 0..iters {
        let mut state = tract_onnx::tract_core::plan::SimpleState::new(plan)?;
        let mut this_iter: BTreeMap<String, f64> = BTreeMap::new();
        let start = Instant::now();
        state.run_plan_with_eval(tvec!(input.clone()), |ctx, op_state, node, inputs| {
            let t = Instant::now();
            let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            *this_iter.entry(kind(node)).or_default() += ms;
            per_node[node.id].push(ms);
            out
        })?;
        totals.push(start.elapsed().as_secs_f64() * 1000.0);
        for (k, v) in this_iter {
            per_kind.entry(k).or_default().push(v);
        }
    }
    let total = median(&mut totals);
    let mut rows: Vec<(String, f64)> = per_kind
        .into_iter()
        .map(|(k, mut v)| (k, median(&mut v)))
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("median inference {total:.1} ms over {iters} runs, {threads} thread(s)");
    for (k, ms) in rows {
        println!("{ms:8.2} ms {:5.1}%  {k}", 100.0 * ms / total);
    }
    let top: usize = std::env::var("PROFILE_NODES").map_or(0, |s| s.parse().unwrap_or(0));
    if top > 0 {
        let mut nodes: Vec<(usize, f64)> = per_node
            .iter_mut()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .map(|(i, v)| (i, median(v)))
            .collect();
        nodes.sort_by(|a, b| b.1.total_cmp(&a.1));
        println!("\nslowest {top} nodes:");
        for (id, ms) in nodes.into_iter().take(top) {
            let node = &plan.model().nodes[id];
            let info = node.op().info().unwrap_or_default().join("; ");
            println!(
                "{ms:8.3} ms  {} {} {:?}  {info}",
                node.name,
                node.op().name(),
                node.outputs[0].fact.shape
            );
        }
    }
    Ok(())
}

/// The operator's kind, with its output shape when `PROFILE_BY_SHAPE` is set.
fn kind(node: &TypedNode) -> String {
    let name = node.op().name().to_string();
    if std::env::var_os("PROFILE_BY_SHAPE").is_some() {
        format!("{name} {:?}", node.outputs[0].fact.shape)
    } else {
        name
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
