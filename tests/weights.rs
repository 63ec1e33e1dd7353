//! torchvision checkpoints → the model the function runs, offline: `import_weights` on the
//! legacy and zip checkpoints, `fetch_model_with` against a local HTTP server (download,
//! checksum, cache reuse, refusals that leave nothing behind), and ONNX files whose weights
//! live in a side file (external data).
//!
//! Every model made here must give `densenet121_untrained_seed0.onnx`'s onnxruntime logits
//! (reference.json) on the reference tensors within 1e-4: the checkpoints hold that model's
//! weights.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use common::file_server::{Answer, Server};

use densenet_lambda::model::{convert_to_nnef, Model, ModelOptions, ModelSource};
use densenet_lambda::weights::fetch::{fetch_model_with, FetchError, Progress, WeightsSource};
use densenet_lambda::weights::import::{import_weights, ImportError};
use prost::Message;
use sha2::{Digest, Sha256};

const REFERENCE_MODEL: &str = "densenet121_untrained_seed0";
const TOLERANCE: f32 = 1e-4;

fn legacy_pth() -> PathBuf {
    common::shared().join("model/densenet121_untrained_seed0_legacy.pth")
}

fn zip_pth() -> PathBuf {
    common::shared().join("model/densenet121_untrained_seed0_zip.pth")
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Loads the model file and checks its logits on every reference tensor; returns the largest
/// difference seen.
fn assert_reference_logits(model: &Path) -> f32 {
    let model = Model::load(
        &ModelSource::File(model.to_path_buf()),
        ModelOptions::threads(1),
    )
    .unwrap_or_else(|e| panic!("load {}: {e}", model.display()));
    assert_eq!(model.classes(), 1000);
    let mut worst = 0f32;
    for (name, _) in common::SAMPLES {
        let logits = model.run(&common::read_npy_f32(name)).unwrap();
        let want = common::reference_logits(name, REFERENCE_MODEL);
        let diff = common::max_abs(&logits, &want);
        assert!(
            diff <= TOLERANCE,
            "{name}: max abs logit difference {diff} > {TOLERANCE}"
        );
        worst = worst.max(diff);
    }
    worst
}

fn is_tar(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.get(257..262) == Some(b"ustar")
}

fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => vec![],
    }
}

#[test]
fn fetch_downloads_checks_caches_and_imports_then_reuses_the_cache_offline() {
    let pth = std::fs::read(legacy_pth()).unwrap();
    let sha = sha256_hex(&pth);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("torch/hub/checkpoints");
    let out = tmp.path().join("model/densenet121.nnef.tar");
    let server = Server::start(pth.clone(), Answer::Whole);
    let url = server.url("densenet121-untrained.pth");
    let source = WeightsSource::with_overrides(Some(&url), Some(&sha)).unwrap();

    let checkpoint = fetch_model_with(&source, &cache, &out, Progress::Log).unwrap();
    assert_eq!(checkpoint, cache.join("densenet121-untrained.pth"));
    assert_eq!(server.requests(), 1);
    assert_eq!(entries(&cache), vec!["densenet121-untrained.pth"]);
    assert!(
        std::fs::read(&checkpoint).unwrap() == pth,
        "cached bytes differ"
    );
    assert!(is_tar(&out), "the default output is the NNEF archive");
    let first = assert_reference_logits(&out);
    println!("fetched model: max abs logit difference {first:e}");

    // Server gone: the cached file is reused (a prefix of the checksum, in capitals, is enough).
    drop(server);
    std::fs::remove_file(&out).unwrap();
    let out_onnx = tmp.path().join("model/densenet121.onnx");
    let prefix = WeightsSource::with_overrides(Some(&url), Some(&sha[..8].to_uppercase())).unwrap();
    let again = fetch_model_with(&prefix, &cache, &out_onnx, Progress::Silent).unwrap();
    assert_eq!(again, checkpoint);
    assert!(!is_tar(&out_onnx), "a .onnx output is the ONNX file");
    let second = assert_reference_logits(&out_onnx);
    println!("from the cache, offline: max abs logit difference {second:e}");
    assert_eq!(entries(&cache), vec!["densenet121-untrained.pth"]);
}

#[test]
fn a_wrong_checksum_download_leaves_nothing() {
    let server = Server::start(std::fs::read(legacy_pth()).unwrap(), Answer::Whole);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let out = tmp.path().join("out/densenet121.nnef.tar");
    let url = server.url("w.pth");
    let source = WeightsSource::with_overrides(Some(&url), Some("a639ec97")).unwrap();
    let err = fetch_model_with(&source, &cache, &out, Progress::Silent).unwrap_err();
    assert!(matches!(err, FetchError::Checksum { .. }), "{err:?}");
    let text = err.to_string();
    println!("wrong checksum: {text}");
    assert!(text.contains(&url) && text.contains("a639ec97"), "{text}");
    assert_eq!(server.requests(), 1);
    assert!(entries(&cache).is_empty(), "cache: {:?}", entries(&cache));
    assert!(!out.exists());
    assert!(entries(&tmp.path().join("out")).is_empty());
}

#[test]
fn a_truncated_download_leaves_nothing() {
    let pth = std::fs::read(legacy_pth()).unwrap();
    let sha = sha256_hex(&pth);
    let (len, half) = (pth.len() as u64, pth.len() / 2);
    let server = Server::start(pth, Answer::CutAfter(half));
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let out = tmp.path().join("densenet121.nnef.tar");
    let url = server.url("w.pth");
    let source = WeightsSource::with_overrides(Some(&url), Some(&sha)).unwrap();
    let err = fetch_model_with(&source, &cache, &out, Progress::Silent).unwrap_err();
    assert!(
        matches!(err, FetchError::Truncated { received, expected, .. } if received <= half as u64 && expected == len),
        "{err:?}"
    );
    assert!(!err.is_offline());
    assert!(err.to_string().contains(&url), "{err}");
    println!("truncated: {err}");
    assert!(entries(&cache).is_empty(), "cache: {:?}", entries(&cache));
    assert!(!out.exists());
    assert_eq!(entries(tmp.path()), vec!["cache"]);
}

#[test]
fn a_cached_file_with_another_checksum_is_refused_and_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let cached = cache.join("densenet121-a639ec97.pth");
    std::fs::write(&cached, b"the user's own file").unwrap();
    let out = tmp.path().join("densenet121.nnef.tar");
    let err = fetch_model_with(
        &WeightsSource::torchvision(),
        &cache,
        &out,
        Progress::Silent,
    )
    .unwrap_err();
    assert!(matches!(err, FetchError::CachedChecksum { .. }), "{err:?}");
    println!("cached file mismatch: {err}");
    assert!(
        err.to_string().contains(&cached.display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read(&cached).unwrap(), b"the user's own file");
    assert!(!out.exists());
}

#[test]
fn an_unreachable_server_is_reported_as_offline() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // the listener is dropped: nothing listens there now
                 // A refused connection, and a name that never resolves (`.invalid`, RFC 2606): what a
                 // machine without internet meets first.
    for url in [
        format!("http://127.0.0.1:{port}/w.pth"),
        "http://densenet-weights.invalid/w.pth".to_string(),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let source = WeightsSource::with_overrides(Some(&url), Some("a639ec97")).unwrap();
        let out = tmp.path().join("densenet121.nnef.tar");
        let err = fetch_model_with(&source, &tmp.path().join("cache"), &out, Progress::Silent)
            .unwrap_err();
        assert!(err.is_offline(), "{url}: {err:?}");
        let text = err.to_string();
        println!("unreachable: {text}");
        assert!(
            text.contains("no network")
                && text.contains("import-weights")
                && text.contains("MODEL_PATH"),
            "{text}"
        );
        assert!(!out.exists());
    }
}

#[test]
fn an_overridden_url_without_a_checksum_is_an_error() {
    let err = WeightsSource::with_overrides(Some("http://127.0.0.1:9/w.pth"), None).unwrap_err();
    assert!(matches!(err, FetchError::MissingChecksum { .. }), "{err:?}");
    assert!(
        err.to_string().contains("DENSENET121_WEIGHTS_SHA256"),
        "{err}"
    );
    let err =
        WeightsSource::with_overrides(Some("http://127.0.0.1:9/w.pth"), Some("  ")).unwrap_err();
    assert!(matches!(err, FetchError::MissingChecksum { .. }), "{err:?}");
}

/// Both output formats from one checkpoint, each checked against the reference logits.
fn import_both_ways(checkpoint: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let onnx = tmp.path().join("densenet121.onnx");
    let nnef = tmp.path().join("densenet121.nnef.tar");
    import_weights(checkpoint, &onnx).unwrap();
    import_weights(checkpoint, &nnef).unwrap();
    assert!(!is_tar(&onnx) && is_tar(&nnef));
    let onnx_bytes = std::fs::read(&onnx).unwrap();
    let proto = tract_onnx::pb::ModelProto::decode(&onnx_bytes[..]).unwrap();
    assert_eq!(proto.opset_import[0].version, 13);
    let graph = proto.graph.unwrap();
    assert_eq!(graph.input[0].name, "input");
    assert_eq!(graph.output[0].name, "output");
    assert_eq!(graph.initializer.len(), 606);
    for path in [&onnx, &nnef] {
        let worst = assert_reference_logits(path);
        println!(
            "{} → {}: max abs logit difference {worst:e}",
            checkpoint.file_name().unwrap().to_string_lossy(),
            path.file_name().unwrap().to_string_lossy()
        );
    }
    assert_eq!(entries(tmp.path()).len(), 2, "{:?}", entries(tmp.path()));
}

#[test]
fn import_weights_reads_the_legacy_checkpoint() {
    import_both_ways(&legacy_pth());
}

#[test]
fn import_weights_reads_the_zip_checkpoint() {
    import_both_ways(&zip_pth());
}

#[test]
fn import_weights_reads_a_checkpoint_whose_storages_are_tagged_for_a_gpu() {
    // What torch.save writes for a model on a GPU: each storage's location is "cuda:0".
    let mut bytes = std::fs::read(legacy_pth()).unwrap();
    let cpu = b"X\x03\x00\x00\x00cpu";
    let at = bytes
        .windows(cpu.len())
        .position(|w| w == cpu)
        .expect("the legacy checkpoint names its storages' location");
    bytes.splice(
        at..at + cpu.len(),
        b"X\x06\x00\x00\x00cuda:0".iter().copied(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let pth = tmp.path().join("gpu.pth");
    std::fs::write(&pth, &bytes).unwrap();
    let out = tmp.path().join("gpu.onnx");
    import_weights(&pth, &out).unwrap();
    assert_reference_logits(&out);
}

#[test]
fn import_weights_refuses_what_is_not_densenet121_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.nnef.tar");

    // Truncated: the pickle is whole, the storages are not.
    let bytes = std::fs::read(legacy_pth()).unwrap();
    let truncated = tmp.path().join("truncated.pth");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = import_weights(&truncated, &out).unwrap_err();
    assert!(matches!(err, ImportError::Checkpoint(_)), "{err:?}");
    assert!(err.to_string().contains("truncated.pth"), "{err}");
    println!("truncated checkpoint: {err}");

    // Not a checkpoint at all.
    let err = import_weights(&common::efficientnet(), &out).unwrap_err();
    assert!(err.to_string().contains("efficientnet_lite0.onnx"), "{err}");

    // Missing file.
    let err = import_weights(&tmp.path().join("nope.pth"), &out).unwrap_err();
    assert!(err.to_string().contains("nope.pth"), "{err}");

    assert!(!out.exists());
    assert_eq!(entries(tmp.path()), vec!["truncated.pth"]);
}

/// Writes `model.onnx` + `model.onnx.data` in `dir` from a self-contained ONNX file, the way
/// current PyTorch's exporter lays them out: every raw initializer moved into the side file,
/// pointed to by location, offset and length. Returns the ONNX path.
fn write_with_external_data(source: &Path, dir: &Path) -> PathBuf {
    let mut proto =
        tract_onnx::pb::ModelProto::decode(&std::fs::read(source).unwrap()[..]).unwrap();
    let mut data = Vec::new();
    let mut moved = 0;
    for tensor in &mut proto.graph.as_mut().unwrap().initializer {
        if tensor.raw_data.is_empty() {
            continue;
        }
        let offset = data.len();
        data.extend_from_slice(&tensor.raw_data);
        let entry = |k: &str, v: String| tract_onnx::pb::StringStringEntryProto {
            key: k.into(),
            value: v,
        };
        tensor.external_data = vec![
            entry("location", "model.onnx.data".into()),
            entry("offset", offset.to_string()),
            entry("length", tensor.raw_data.len().to_string()),
        ];
        tensor.data_location = Some(tract_onnx::pb::tensor_proto::DataLocation::External as i32);
        tensor.raw_data = Vec::new();
        moved += 1;
    }
    assert!(moved > 100, "only {moved} initializers moved");
    let onnx = dir.join("model.onnx");
    std::fs::write(&onnx, proto.encode_to_vec()).unwrap();
    std::fs::write(dir.join("model.onnx.data"), data).unwrap();
    onnx
}

#[test]
fn an_onnx_file_with_external_data_loads_and_converts() {
    let tmp = tempfile::tempdir().unwrap();
    let onnx = write_with_external_data(&common::densenet(), tmp.path());
    let bytes = std::fs::read(&onnx).unwrap();
    assert!(
        bytes.len() < 1_000_000,
        "weights still inline: {} bytes",
        bytes.len()
    );
    assert_eq!(
        densenet_lambda::model::external_data::external_data_location(&bytes).unwrap(),
        Some("model.onnx.data".to_string())
    );
    assert_eq!(
        densenet_lambda::model::external_data::external_data_location(
            &std::fs::read(common::densenet()).unwrap()
        )
        .unwrap(),
        None
    );

    let worst = assert_reference_logits(&onnx);
    println!("external-data ONNX: max abs logit difference {worst:e}");

    let nnef = tmp.path().join("model.nnef.tar");
    convert_to_nnef(&onnx, &nnef).unwrap();
    assert!(is_tar(&nnef));
    assert_reference_logits(&nnef);

    // As embedded bytes (no folder to find the side file in) it cannot load, and says why.
    let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    let err = Model::load(
        &ModelSource::Embedded {
            name: "model.onnx",
            bytes: leaked,
        },
        ModelOptions::threads(1),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("model.onnx.data") && text.contains("densenet-lambda convert"),
        "{text}"
    );
}

/// `model/export_densenet121.py --weights legacy.pth` with a Python that has torch: the file it
/// writes loads in tract and gives the reference logits. Needs
/// `DENSENET_EXPORT_PYTHON=/path/to/python` (with torch, torchvision, onnx; see the script).
#[test]
#[ignore = "needs DENSENET_EXPORT_PYTHON, a Python with torch, torchvision and onnx"]
fn the_python_export_loads_in_tract() {
    let python = std::env::var("DENSENET_EXPORT_PYTHON")
        .expect("set DENSENET_EXPORT_PYTHON to a Python with torch, torchvision and onnx");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("densenet121.onnx");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("model/export_densenet121.py");
    let status = std::process::Command::new(python)
        .arg(script)
        .arg("--weights")
        .arg(legacy_pth())
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        entries(tmp.path()),
        vec!["densenet121.onnx"],
        "one self-contained file"
    );
    let worst = assert_reference_logits(&out);
    println!("Python export: max abs logit difference {worst:e}");
}
