//! The function on both architectures: an x86_64 build and the arm64 `bootstrap` (run under
//! qemu-user as a Graviton2, the CPU of Lambda's arm64 hosts: Neoverse N1, NEON, no SVE)
//! classify the samples and give the same top-5 classes in the same order, probabilities within
//! 1e-3, with the model CI deploys and with DenseNet-121 (whose dense blocks the project's own
//! operators run, with NEON on arm64). Each also logs what runs the model (printed here).
//!
//! CI builds both and names them in `X86_BOOTSTRAP` and `ARM64_BOOTSTRAP`; the arm64 one runs
//! with the model compiled into it, the x86_64 one with `X86_MODEL_PATH` if set (the same model
//! file), else its own. Without them this test says so and checks nothing. `QEMU` names the
//! emulator (default `qemu-aarch64`, with the arm64 C library from Debian's libc6-arm64-cross)
//! and `QEMU_CPU` the CPU it emulates (default `neoverse-n1`).

mod common;

use std::process::Command;

/// `bootstrap classify --topk 5` on every sample: one JSON reply per line, and the log.
fn classify(
    program: &str,
    prefix: &[String],
    model: Option<String>,
) -> (Vec<serde_json::Value>, String) {
    let mut command = Command::new(program);
    command.args(prefix).args(["classify", "--topk", "5"]);
    for (name, _) in common::SAMPLES {
        command.arg(common::sample(name));
    }
    command.env_remove("MODEL_PATH");
    // Emulated, a DenseNet-121 inference takes seconds to tens of seconds (more while CI builds
    // beside it): no request timeout is what is checked here.
    command.env("REQUEST_TIMEOUT_SECS", "3600");
    if let Some(model) = model {
        command.env("MODEL_PATH", model);
    }
    let cpu = std::env::var("QEMU_CPU").unwrap_or_else(|_| "neoverse-n1".into());
    let output = command
        .env("QEMU_LD_PREFIX", "/usr/aarch64-linux-gnu")
        .env("QEMU_CPU", cpu)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{program} {prefix:?}: {stderr}");
    let replies = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    (replies, stderr)
}

/// The x86_64 bootstrap, the arm64 one and the emulator that runs it, or `None` (said) when CI
/// did not name the two builds.
fn bootstraps() -> Option<(String, String, String)> {
    let (Ok(x86), Ok(arm64)) = (
        std::env::var("X86_BOOTSTRAP"),
        std::env::var("ARM64_BOOTSTRAP"),
    ) else {
        eprintln!("skipped: set X86_BOOTSTRAP and ARM64_BOOTSTRAP to the two deployed binaries");
        return None;
    };
    let qemu = std::env::var("QEMU").unwrap_or_else(|_| "qemu-aarch64".into());
    Some((x86, arm64, qemu))
}

#[test]
fn arm64_and_x86_64_bootstraps_agree() {
    let Some((x86, arm64, qemu)) = bootstraps() else {
        return;
    };
    let (x86_replies, x86_log) = classify(&x86, &[], std::env::var("X86_MODEL_PATH").ok());
    let (arm_replies, arm_log) = classify(&qemu, &[arm64], None);
    for (what, log) in [("x86_64", &x86_log), ("arm64", &arm_log)] {
        let loaded = log
            .lines()
            .find(|l| l.contains("model loaded"))
            .unwrap_or_else(|| panic!("{what}: no load line in {log}"));
        eprintln!("{what}: {loaded}");
        assert!(loaded.contains("kernels="), "{loaded}");
    }
    agree(&x86_replies, &arm_replies);
}

/// The same for DenseNet-121 (the shared graph, converted by the x86_64 binary as a deployment
/// would): the project's own operators run its dense blocks, with NEON on arm64.
#[test]
fn arm64_and_x86_64_agree_on_densenet_with_the_own_operators() {
    let Some((x86, arm64, qemu)) = bootstraps() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nnef = dir.path().join("densenet121.nnef.tar");
    let status = Command::new(&x86)
        .arg("convert")
        .arg(common::densenet())
        .arg(&nnef)
        .status()
        .unwrap();
    assert!(status.success());
    let model = Some(nnef.display().to_string());
    let (x86_replies, x86_log) = classify(&x86, &[], model.clone());
    let (arm_replies, arm_log) = classify(&qemu, &[arm64], model);
    for (what, log, isa) in [
        ("x86_64", &x86_log, ""),
        ("arm64", &arm_log, "isa=\"neon\""),
    ] {
        let loaded = log
            .lines()
            .find(|l| l.contains("model loaded"))
            .unwrap_or_else(|| panic!("{what}: no load line in {log}"));
        eprintln!("{what}: {loaded}");
        assert!(loaded.contains("dense_blocks=4"), "{loaded}");
        assert!(loaded.contains("stems=1"), "{loaded}");
        assert!(loaded.contains(isa), "{loaded}");
    }
    agree(&x86_replies, &arm_replies);
}

/// The same top-5 classes in the same order, probabilities within 1e-3.
fn agree(x86_replies: &[serde_json::Value], arm_replies: &[serde_json::Value]) {
    assert_eq!(x86_replies.len(), common::SAMPLES.len());
    assert_eq!(arm_replies.len(), common::SAMPLES.len());
    for ((name, _), (a, b)) in common::SAMPLES
        .iter()
        .zip(x86_replies.iter().zip(arm_replies))
    {
        let (a, b) = (a["topk"].as_array().unwrap(), b["topk"].as_array().unwrap());
        assert_eq!(a.len(), 5, "{name}");
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x["class_id"], y["class_id"], "{name}: {a:?} vs {b:?}");
            let (p, q) = (
                x["probability"].as_f64().unwrap(),
                y["probability"].as_f64().unwrap(),
            );
            assert!((p - q).abs() <= 1e-3, "{name}: {p} vs {q}");
        }
        eprintln!("{name}: top-5 agree ({})", a[0]["class_name"]);
    }
}
