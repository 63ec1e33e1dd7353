//! A/B of ways to prepare the same model, interleaved in one process so that every variant sees
//! the same machine: the evidence for keeping or dropping each inference lever
//! (`docs/performance.md`).
//!
//!     cargo run --release --example inference_ab -- [--model M] [--rounds R] [--threads T] \
//!         [--by-conv] [NAME=SPEC ...]
//!
//! A SPEC is a comma list of `rewrite=0|1` (the graph rewrites of `src/model/rewrite.rs`, on by
//! default), `ops=0|1|direct|winograd2|winograd4|auto` (the project's own operators of `src/model/ops`, on by
//! default: off, or with the 3×3 convolutions computed one way), `stem=0|1` (whether the network's
//! stem joins them, on by default; after `ops=`), `kernel=NAME` (every f32 product that can run tract kernel NAME runs it:
//! `kernels::with_kernel`; `kernel=tract` ignores `src/model/kernels.rs`'s measurements), and `TRACT_…=VALUE` (a scopable tract knob, e.g.
//! `TRACT_LAZY_IM2COL_MIN_KERNEL=100` for eager im2col, entered around the optimisation). Default
//! variants: `tract=rewrite=0,kernel=tract,ops=0` (the graph as written, tract's operators and choices),
//! `pool-first=rewrite=1,kernel=tract,ops=0` and `as-loaded=` (what `Model::load` does). Each round runs every variant once on
//! T threads (default 1; the first variant rotating), after two warm-up rounds; medians and the ratio to
//! the first variant are printed with the CPU and the load average. `--by-conv` also prints,
//! for every ONNX node (all the plan nodes derived from it: pad, im2col, packing, product), the
//! median per variant and the fastest.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use densenet_lambda::model::{kernels, ops, rewrite};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::knobs::KnobScope;

struct Variant {
    name: String,
    plan: Arc<TypedRunnableModel>,
    totals: Vec<f64>,
    by_conv: BTreeMap<String, Vec<f64>>,
}

fn prepare(
    decluttered: &TypedModel,
    spec: &str,
    threads: usize,
) -> TractResult<Arc<TypedRunnableModel>> {
    let (mut rewrite, mut kernel, mut knobs) = (true, None, vec![]);
    let mut own_ops = Some(ops::Options::default());
    for item in spec.split(',').filter(|s| !s.is_empty()) {
        let (key, value) = item.split_once('=').unwrap_or((item, ""));
        match key {
            "rewrite" => rewrite = value != "0",
            "ops" => {
                own_ops = match value {
                    "0" => None,
                    "direct" => Some(ops::Options {
                        conv3x3: ops::Conv3x3Method::Direct,
                        ..own_ops.unwrap_or_default()
                    }),
                    "winograd2" => Some(ops::Options {
                        conv3x3: ops::Conv3x3Method::Winograd2,
                        ..own_ops.unwrap_or_default()
                    }),
                    "winograd4" => Some(ops::Options {
                        conv3x3: ops::Conv3x3Method::Winograd4,
                        ..own_ops.unwrap_or_default()
                    }),
                    _ => Some(own_ops.unwrap_or_default()),
                }
            }
            "stem" => {
                own_ops = own_ops.map(|o| ops::Options {
                    stem: value != "0",
                    ..o
                })
            }
            "kernel" => kernel = Some(&*Box::leak(value.to_string().into_boxed_str())),
            _ => knobs.push((key, value)),
        }
    }
    let mut model = decluttered.clone();
    if rewrite {
        rewrite::rewrite(&mut model)?;
    }
    if let Some(options) = own_ops {
        ops::fuse_with(&mut model, &options)?;
    }
    let scope = KnobScope::new(knobs)?;
    let optimize = || scope.enter(|| model.into_optimized());
    let optimized = match kernel {
        Some(name) => kernels::with_kernel(name, optimize),
        None => optimize(),
    }?;
    if threads <= 1 {
        return optimized.into_runnable();
    }
    // A pool of `threads` separate threads (the service's worker joins its pool instead: model.rs).
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let options = RunOptions {
        executor: Some(tract_linalg::multithread::Executor::MultiThread(Arc::new(
            pool,
        ))),
        ..RunOptions::default()
    };
    optimized.into_runnable_with_options(&options)
}

/// The ONNX node a plan node comes from: its name up to the first `.` (tract's suffixes for the
/// nodes it derives, e.g. `.matmatmul`, `.im2col`, `.prefused`). A 1×1 convolution fused with the
/// ReLU before it carries the ReLU's name.
fn conv_of(name: &str) -> Option<String> {
    Some(name.split('.').next().unwrap_or(name).to_string())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() -> TractResult<()> {
    let shared = std::env::var_os("SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let mut model_path = shared.join("model/densenet121_untrained_seed0.onnx");
    let (mut rounds, mut by_conv, mut specs, mut threads) = (20usize, false, vec![], 1usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => model_path = args.next().expect("--model PATH").into(),
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds N")
            }
            "--by-conv" => by_conv = true,
            "--threads" => {
                threads = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--threads N")
            }
            "--bench" => {}
            _ => specs.push(arg),
        }
    }
    if specs.is_empty() {
        specs = vec![
            "tract=rewrite=0,kernel=tract,ops=0".into(),
            "pool-first=rewrite=1,kernel=tract,ops=0".into(),
            "as-loaded=".into(),
        ];
    }
    if let Some(edit) = kernels::tune() {
        println!("TRACT_CPU_ISA {edit} (kernels::tune)");
    }
    // The graph as written (what `model::decluttered_from_onnx` does, less `model::rewrite`).
    let decluttered = tract_onnx::onnx()
        .model_for_path(&model_path)?
        .with_input_fact(0, f32::fact([1, 3, 224, 224]).into())?
        .into_typed()?
        .into_decluttered()?;
    let mut variants = specs
        .iter()
        .map(|s| {
            let (name, spec) = s.split_once('=').unwrap_or((s, ""));
            Ok(Variant {
                name: name.to_string(),
                plan: prepare(&decluttered, spec, threads)?,
                totals: vec![],
                by_conv: BTreeMap::new(),
            })
        })
        .collect::<TractResult<Vec<_>>>()?;
    let input: TValue = Tensor::from_shape(
        &[1, 3, 224, 224],
        &(0..3 * 224 * 224)
            .map(|i| ((i % 251) as f32 / 125.0) - 1.0)
            .collect::<Vec<_>>(),
    )?
    .into();
    println!("cpu      {}", kernels::cpu());
    println!("model    {}", model_path.display());
    println!(
        "load average at the start {}; {rounds} rounds, {threads} thread(s)",
        loadavg()
    );
    let n = variants.len();
    for round in 0..rounds + 2 {
        for i in 0..n {
            let v = &mut variants[(round + i) % n];
            let mut state = tract_onnx::tract_core::plan::SimpleState::new(&v.plan)?;
            let mut convs: BTreeMap<String, f64> = BTreeMap::new();
            let start = Instant::now();
            if by_conv {
                state.run_plan_with_eval(tvec!(input.clone()), |ctx, op_state, node, inputs| {
                    let t = Instant::now();
                    let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                    if let Some(conv) = conv_of(&node.name) {
                        *convs.entry(conv).or_default() += t.elapsed().as_secs_f64() * 1e3;
                    }
                    out
                })?;
            } else {
                state.run(tvec!(input.clone()))?;
            }
            let ms = start.elapsed().as_secs_f64() * 1e3;
            if round >= 2 {
                v.totals.push(ms);
                for (conv, t) in convs {
                    v.by_conv.entry(conv).or_default().push(t);
                }
            }
        }
    }
    let base = median(&mut variants[0].totals.clone());
    println!(
        "\n{:<24} {:>10} {:>10} {:>8}",
        "variant", "median ms", "min ms", "÷ first"
    );
    for v in &mut variants {
        let med = median(&mut v.totals);
        let min = v.totals.iter().copied().fold(f64::MAX, f64::min);
        println!("{:<24} {med:>10.2} {min:>10.2} {:>8.3}", v.name, med / base);
    }
    if by_conv {
        println!("\nper ONNX node, median ms:");
        print!("{:<52}", "node");
        for v in &variants {
            print!(" {:>12}", v.name.chars().take(12).collect::<String>());
        }
        println!("  fastest");
        let convs: Vec<String> = variants[0].by_conv.keys().cloned().collect();
        for conv in convs {
            print!("{conv:<52}");
            let mut best = (f64::MAX, "");
            for v in &mut variants {
                match v.by_conv.get_mut(&conv) {
                    Some(times) => {
                        let m = median(times);
                        if m < best.0 {
                            best = (m, &v.name);
                        }
                        print!(" {m:>12.3}");
                    }
                    None => print!(" {:>12}", "-"),
                }
            }
            println!("  {}", best.1);
        }
    }
    println!("\nload average at the end {}", loadavg());
    Ok(())
}
