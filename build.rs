//! With the `embed-model` feature (on by default), picks the model file `src/model/embedded.rs`
//! compiles in: `EMBED_MODEL_PATH` if set (it must exist: the user asked for it), else
//! `model/densenet121.nnef.tar` (made by `fetch-model`, `import-weights` or `convert`; loads
//! fastest), else `model/densenet121.onnx`.
//!
//! No build fails for want of a model: without one, `cargo build`, `cargo run` and
//! `cargo lambda watch` build a binary that loads `MODEL_PATH` (or the default files) at run
//! time, with a warning here. The exception is the deployment artifact: a release
//! `cargo lambda build` (which `sam build` runs) without a model would upload a function that
//! can only answer 500, so that build stops and says how to make or ship a model.
//!
//! An ONNX file that keeps its weights in a side file (`x.onnx.data`, what current PyTorch
//! exports) cannot be embedded, since the binary carries only the one file: refused with the
//! command that makes it self-contained (`densenet-lambda convert`). The build stops when the
//! file was asked for (`EMBED_MODEL_PATH`) or is for deployment; a development build warns and
//! leaves the file to be loaded by its path at run time, where the side file is found.

use std::path::{Path, PathBuf};

#[path = "src/model/external_data.rs"]
mod external_data;

const NNEF: &str = "model/densenet121.nnef.tar";
const ONNX: &str = "model/densenet121.onnx";

/// What cargo-lambda 1.9.2 was seen to give build scripts (an environment dump from this
/// build script under each command): `cargo lambda build` (which `sam build` runs) sets
/// `CARGO_LAMBDA_COLOR`, and with its default zig compiler `CARGO_ZIGBUILD_RUSTC_VERSION`.
/// `cargo lambda watch` sets `CARGO_LAMBDA_COLOR` too, but also the emulated runtime's
/// `AWS_LAMBDA_RUNTIME_API`, and not the zig variable: its builds load `MODEL_PATH` at run time
/// and must keep working without an embedded model.
const CARGO_LAMBDA: &str = "CARGO_LAMBDA_COLOR";
const CARGO_ZIGBUILD: &str = "CARGO_ZIGBUILD_RUSTC_VERSION";
const LAMBDA_RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";

fn main() {
    println!("cargo:rerun-if-env-changed=EMBED_MODEL_PATH");
    for var in [CARGO_LAMBDA, CARGO_ZIGBUILD, LAMBDA_RUNTIME_API] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    // The folder, not the two candidate files: a rerun-if-changed on a missing file makes cargo
    // rerun this script on every build; the folder's mtime changes when a model appears.
    println!("cargo:rerun-if-changed=model");
    println!("cargo:rerun-if-changed=src/model/external_data.rs");
    println!("cargo::rustc-check-cfg=cfg(embedded_model)");
    if std::env::var_os("CARGO_FEATURE_EMBED_MODEL").is_none() {
        return;
    }
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let explicit = std::env::var_os("EMBED_MODEL_PATH").filter(|p| !p.is_empty());
    let chosen = match &explicit {
        Some(path) => {
            let path = manifest_dir.join(path);
            if !path.is_file() {
                fail(&format!(
                    "EMBED_MODEL_PATH={} does not exist. Point it at a model file (an .onnx, or an \
                     .nnef.tar from `densenet-lambda fetch-model`, `import-weights` or `convert`), \
                     or unset it to embed {NNEF} or {ONNX}",
                    path.display()
                ));
            }
            Some(path)
        }
        None => [NNEF, ONNX]
            .iter()
            .map(|p| manifest_dir.join(p))
            .find(|p| p.is_file()),
    };
    let Some(path) = chosen else {
        no_model(&manifest_dir);
        return;
    };
    if let Some(side) = side_file(&path) {
        let shown = path.strip_prefix(&manifest_dir).unwrap_or(&path).display();
        let message = format!(
            "{shown} keeps its weights in a side file ({side}: \"external data\", as current PyTorch \
             exports), which cannot be compiled into the binary. Make one self-contained file:\n\
             \x20   densenet-lambda convert {shown} {NNEF}\n\
             (before the binary exists: `cargo run --no-default-features -- convert {shown} {NNEF}`), \
             then build again"
        );
        // Asked for explicitly, or about to be deployed: stop. A development build goes on
        // without embedding; the binary then loads the file by its path, side file included.
        if explicit.is_some() || deployment_build() {
            fail(&message);
        }
        println!("cargo:warning=not embedded: {}", message.replace('\n', " "));
        return;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    println!("cargo:rerun-if-changed={}", path.display());
    println!("cargo:rustc-cfg=embedded_model");
    println!("cargo:rustc-env=EMBEDDED_MODEL_PATH={}", path.display());
    println!("cargo:rustc-env=EMBEDDED_MODEL_NAME={name}");
}

/// No model to embed: a warning for development builds, a refusal for a release
/// `cargo lambda build`, whose output is what gets deployed.
fn no_model(manifest_dir: &Path) {
    if deployment_build() {
        fail(&format!(
            "no model to embed in the Lambda function: neither {nnef} nor {onnx} exists (in {dir}), \
             and EMBED_MODEL_PATH is not set. The deployed bootstrap would answer every /predict \
             with a 500. Make the model first, then build again:\n\
             \x20   densenet-lambda fetch-model                      # torchvision's weights -> {NNEF} (needs internet)\n\
             \x20   densenet-lambda import-weights WEIGHTS.pth {NNEF}   # from a checkpoint you have\n\
             \x20   EMBED_MODEL_PATH=/path/to/model.onnx cargo lambda build --release   # any compatible model\n\
             or ship the model separately (e.g. in a layer): build with --no-default-features and set \
             MODEL_PATH=/opt/... in the function's environment.\n\
             (Before the binary exists: `cargo run --no-default-features -- fetch-model`.)",
            nnef = NNEF,
            onnx = ONNX,
            dir = manifest_dir.display()
        ));
    }
    println!(
        "cargo:warning=no model embedded (no {NNEF} or {ONNX}, EMBED_MODEL_PATH unset): the binary \
         loads MODEL_PATH or those files at run time. Make one with `densenet-lambda fetch-model`."
    );
}

/// Whether this is a release `cargo lambda build`: the artifact that gets deployed. Not
/// `cargo lambda watch`, whose builds run under the emulated runtime.
fn deployment_build() -> bool {
    let set = |var: &str| std::env::var_os(var).is_some();
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let lambda_build = set(CARGO_ZIGBUILD) || (set(CARGO_LAMBDA) && !set(LAMBDA_RUNTIME_API));
    release && lambda_build
}

/// The side file an ONNX model keeps its weights in, if any (an NNEF archive never does).
fn side_file(path: &Path) -> Option<String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => fail(&format!(
            "cannot read the model to embed, {}: {e}",
            path.display()
        )),
    };
    if bytes.get(257..262) == Some(b"ustar") {
        return None;
    }
    external_data::external_data_location(&bytes).ok().flatten()
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}
