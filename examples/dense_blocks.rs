//! Where the time of the project's own operator goes on DenseNet-121 (its stem, four dense blocks
//! and three transitions): the GMAC/s of the stem's, the 1×1 and the 3×3 convolutions and the time
//! around them.
//!
//!     cargo run --release --example dense_blocks -- [MODEL.onnx] [ITERS] [ISA] [CONV3X3]
//!
//! Runs the `DenseBlocks` operator of the model alone, ITERS times (default 20) on one thread,
//! and prints the fastest run (the least disturbed on a shared machine), then each stage alone
//! (the convolutions' speed per image size). ISA is `best` (default) or `portable`; CONV3X3
//! `auto` (default), `winograd2`, `winograd4` or `direct`.

use std::path::PathBuf;
use std::time::Instant;

use densenet_lambda::model::decluttered_from_onnx;
use densenet_lambda::model::kernels::cpu;
use densenet_lambda::model::ops::isa::Isa;
use densenet_lambda::model::ops::{self, DenseBlocks, StepTimes};

/// The fastest of the runs: on a shared machine, the one least disturbed (the kernels' own
/// time varies little; other tenants' load adds to it).
fn fastest(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[0]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/model/densenet121_untrained_seed0.onnx")
    });
    let iters: usize = args.next().map_or(20, |s| s.parse().expect("ITERS"));
    let isa = match args.next().as_deref() {
        Some("portable") => Isa::available()[0],
        _ => Isa::best(),
    };
    let conv3x3 = match args.next().as_deref() {
        Some("direct") => ops::Conv3x3Method::Direct,
        Some("winograd4") => ops::Conv3x3Method::Winograd4,
        Some("winograd2") => ops::Conv3x3Method::Winograd2,
        _ => ops::Conv3x3Method::Auto,
    };
    println!("cpu {}\nisa {}, 3×3 {conv3x3:?}", cpu(), isa.name());
    let mut model =
        decluttered_from_onnx(&std::fs::read(&path).expect("read model")).expect("load");
    let options = ops::Options {
        conv3x3,
        ..ops::Options::default()
    };
    ops::fuse_with(&mut model, &options).expect("fuse");
    let op: DenseBlocks = model
        .nodes()
        .iter()
        .find_map(|n| n.op_as::<DenseBlocks>().cloned())
        .expect("no dense block in this model");
    let (c, h, w) = op.input();
    let (oc, oh, ow) = op.output();
    let input: Vec<f32> = (0..c * h * w)
        .map(|i| ((i % 97) as f32 - 48.0) / 25.0)
        .collect();
    let mut output = vec![0.0; oc * oh * ow];
    op.run(isa, &input, &mut output);
    let (mut all, mut pw, mut c3, mut lay, mut st) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..iters {
        let mut t = StepTimes::default();
        let start = Instant::now();
        op.run_timed(isa, &input, &mut output, &mut t);
        all.push(start.elapsed().as_secs_f64() * 1e3);
        pw.push(t.pointwise.as_secs_f64() * 1e3);
        c3.push(t.conv3x3.as_secs_f64() * 1e3);
        lay.push(t.layout.as_secs_f64() * 1e3);
        st.push(t.stem.as_secs_f64() * 1e3);
    }
    let (mp, mc) = op.macs();
    let (all, pw, c3, lay, st) = (
        fastest(all),
        fastest(pw),
        fastest(c3),
        fastest(lay),
        fastest(st),
    );
    if let Some(stem) = &op.stem {
        println!(
            "stem {}×{}×{} → {}: {st:.2} ms, {:.1} GMAC/s (convolution, ReLU and pool)",
            stem.channels,
            stem.size.0,
            stem.size.1,
            stem.outputs(),
            stem.macs() as f64 / st / 1e6
        );
    }
    println!(
        "{} stages {c}×{h}×{w} → {oc}×{oh}×{ow}: {all:.2} ms | 1×1 (blocks) {pw:.2} ms | 3×3 {c3:.2} ms, {:.1} GMAC/s as direct | transitions and layout {lay:.2} ms",
        op.stages.len(),
        mc as f64 / c3 / 1e6,
    );
    let block_pointwise: usize = op.stages.iter().map(|s| s.block.macs().0).sum();
    println!(
        "1×1 of the blocks {:.1} GMAC/s; all 1×1 (transitions too) {:.0} MMAC",
        block_pointwise as f64 / pw / 1e6,
        mp as f64 / 1e6
    );
    // Each stage alone: the convolutions' speed per image size.
    for (i, stage) in op.stages.iter().enumerate() {
        let one = DenseBlocks {
            stem: None,
            stages: vec![stage.clone()],
        };
        let (c, h, w) = one.input();
        let (oc, oh, ow) = one.output();
        let input: Vec<f32> = (0..c * h * w)
            .map(|i| ((i % 89) as f32 - 44.0) / 25.0)
            .collect();
        let mut output = vec![0.0; oc * oh * ow];
        let (mut pw, mut c3) = (vec![], vec![]);
        for _ in 0..iters {
            let mut t = StepTimes::default();
            one.run_timed(isa, &input, &mut output, &mut t);
            pw.push(t.pointwise.as_secs_f64() * 1e3);
            c3.push(t.conv3x3.as_secs_f64() * 1e3);
        }
        let (pw, c3) = (fastest(pw), fastest(c3));
        let (block_pw, block_c3) = stage.block.macs();
        println!(
            "stage {}: {} layers on {h}×{w}, {c} → {} channels | 1×1 {pw:.2} ms, {:.1} GMAC/s | 3×3 {c3:.2} ms, {:.1} GMAC/s as direct",
            i + 1,
            stage.block.layers.len(),
            stage.block.outputs(),
            block_pw as f64 / pw / 1e6,
            block_c3 as f64 / c3 / 1e6,
        );
    }
}
