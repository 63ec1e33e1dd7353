//! A new user's first run, with no model anywhere: `serve` fetches torchvision's weights as the
//! tutorial does on its first run (here from a local server standing in for
//! download.pytorch.org), or, without a network, keeps answering `GET /` and says on `/predict`
//! what to do instead; the Lambda function refuses to start without a model; `fetch-model` and
//! `import-weights` work from the command line.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::file_server::{Answer, Server};

const BINARY: &str = env!("CARGO_BIN_EXE_densenet-lambda");

fn legacy_pth() -> PathBuf {
    common::shared().join("model/densenet121_untrained_seed0_legacy.pth")
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh folder: the working directory (no `model/` in it) and PyTorch's cache of one run.
fn scratch(label: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("first_run-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("torch")).unwrap();
    dir
}

/// `serve` started in `dir` with no model configured, weights from `url`.
fn serve_without_a_model(dir: &Path, url: &str, sha256: &str) -> common::Serve {
    common::serve_with(|command| {
        command
            .current_dir(dir)
            .env_remove("MODEL_PATH")
            .env("TORCH_HOME", dir.join("torch"))
            .env("DENSENET121_WEIGHTS_URL", url)
            .env("DENSENET121_WEIGHTS_SHA256", sha256)
            .stdout(std::process::Stdio::null());
    })
}

fn post_kitten(server: &common::Serve) -> (u16, String) {
    let form = reqwest::blocking::multipart::Form::new()
        .file("file", common::sample("kitten.jpg"))
        .unwrap();
    let response = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
        .post(format!("{}/predict", server.base))
        .multipart(form)
        .send()
        .unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

/// Whether this test build has a model compiled in (then there is no "no model" case to test).
fn embedded() -> bool {
    let embedded = densenet_lambda::model::embedded::model().is_some();
    if embedded {
        eprintln!("skipped: this build embeds a model, so it always has one");
    }
    embedded
}

#[test]
fn serve_fetches_the_weights_on_its_first_run_then_answers() {
    if embedded() {
        return;
    }
    let pth = std::fs::read(legacy_pth()).unwrap();
    let weights = Server::start(pth.clone(), Answer::Whole);
    let dir = scratch("fetch");
    let server = serve_without_a_model(
        &dir,
        &weights.url("densenet121-a639ec97.pth"),
        &sha256_hex(&pth),
    );
    let (status, body) = post_kitten(&server);
    assert_eq!(status, 200, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        reply["class_id"].is_u64() && reply["class_name"].is_string(),
        "{body}"
    );
    // The checkpoint is in PyTorch's cache, the model where the build and `serve` look first.
    let cached = dir.join("torch/hub/checkpoints/densenet121-a639ec97.pth");
    assert_eq!(std::fs::read(&cached).unwrap(), pth);
    assert!(dir.join("model/densenet121.nnef.tar").is_file());
    assert_eq!(weights.requests(), 1);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_a_network_serve_still_answers_and_names_the_offline_routes() {
    if embedded() {
        return;
    }
    let dir = scratch("offline");
    // A port nobody listens on: the connection is refused, as without a network.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = serve_without_a_model(
        &dir,
        &format!("http://{closed}/models/densenet121-a639ec97.pth"),
        "a639ec97",
    );
    let greeting = reqwest::blocking::get(&server.base).unwrap();
    assert_eq!(greeting.status(), 200);
    for _ in 0..2 {
        let (status, body) = post_kitten(&server);
        assert_eq!(status, 500, "{body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        let error = error["error"].as_str().unwrap();
        for words in ["no network", "import-weights", "MODEL_PATH"] {
            assert!(error.contains(words), "{words:?} missing from {error}");
        }
    }
    assert_eq!(reqwest::blocking::get(&server.base).unwrap().status(), 200);
    assert!(!dir.join("model").exists(), "something was written");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_lambda_function_refuses_to_start_without_a_model() {
    if embedded() {
        return;
    }
    let dir = scratch("lambda");
    let output = Command::new(BINARY)
        .current_dir(&dir)
        .env_remove("MODEL_PATH")
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for words in ["no model", "fetch-model", "MODEL_PATH", "EMBED_MODEL_PATH"] {
        assert!(stderr.contains(words), "{words:?} missing from {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fetch_model_and_import_weights_from_the_command_line() {
    let pth = std::fs::read(legacy_pth()).unwrap();
    let weights = Server::start(pth.clone(), Answer::Whole);
    let dir = scratch("cli");
    let run = |args: &[&str], sha: &str| {
        Command::new(BINARY)
            .args(args)
            .current_dir(&dir)
            .env("TORCH_HOME", dir.join("torch"))
            .env(
                "DENSENET121_WEIGHTS_URL",
                weights.url("densenet121-a639ec97.pth"),
            )
            .env("DENSENET121_WEIGHTS_SHA256", sha)
            .output()
            .unwrap()
    };
    // A wrong checksum: exit 1, the file and what was expected named, nothing written.
    let wrong = run(&["fetch-model", "--out", "wrong.onnx"], "00000000");
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("densenet121-a639ec97.pth") && stderr.contains("00000000"),
        "{stderr}"
    );
    assert!(!dir.join("wrong.onnx").exists());
    // The right one: the default output, the NNEF archive.
    let fetched = run(&["fetch-model"], &sha256_hex(&pth));
    assert!(
        fetched.status.success(),
        "{}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    assert!(dir.join("model/densenet121.nnef.tar").is_file());
    // import-weights from a local checkpoint, as ONNX.
    let imported = Command::new(BINARY)
        .arg("import-weights")
        .arg(legacy_pth())
        .arg(dir.join("imported.onnx"))
        .output()
        .unwrap();
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    // Both classify the kitten alike (the same weights).
    let classify = |model: &Path| {
        let output = Command::new(BINARY)
            .args(["classify", "--topk", "3"])
            .arg(common::sample("kitten.jpg"))
            .env("MODEL_PATH", model)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let (a, b) = (
        classify(&dir.join("model/densenet121.nnef.tar")),
        classify(&dir.join("imported.onnx")),
    );
    let class =
        |line: &str| serde_json::from_str::<serde_json::Value>(line).unwrap()["class_id"].clone();
    assert_eq!(class(&a), class(&b), "{a} vs {b}");
    let _ = std::fs::remove_dir_all(&dir);
}
