//! With the `embed-model` feature (on by default), resolves which model file `src/embedded.rs`
//! compiles in: `EMBED_MODEL_PATH`, else `model/densenet121.nnef.tar` (made by `convert`; loads
//! faster) if present, else `model/densenet121.onnx`.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=EMBED_MODEL_PATH");
    // The folder, not the two candidate files: a rerun-if-changed on a missing file makes cargo
    // rerun this script on every build; the folder's mtime changes when a model appears.
    println!("cargo:rerun-if-changed=model");
    println!("cargo::rustc-check-cfg=cfg(embedded_model)");
    if std::env::var_os("CARGO_FEATURE_EMBED_MODEL").is_none() {
        return;
    }
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let path = std::env::var_os("EMBED_MODEL_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let nnef = PathBuf::from("model/densenet121.nnef.tar");
            if manifest_dir.join(&nnef).is_file() {
                nnef
            } else {
                PathBuf::from("model/densenet121.onnx")
            }
        });
    let path = if path.is_absolute() {
        path
    } else {
        manifest_dir.join(path)
    };
    if !path.is_file() {
        let advice = format!(
            "no model to embed at {}: run `python3 model/export_densenet121.py` or set EMBED_MODEL_PATH \
             to a compatible ONNX file (or build with --no-default-features and set MODEL_PATH at run time)",
            path.display()
        );
        if std::env::var("PROFILE").as_deref() == Ok("release") {
            panic!("{advice}");
        }
        println!("cargo:warning={advice}");
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
