//! The model compiled into the binary by the `embed-model` feature (on by default).
//!
//! SAM's Rust builder and `cargo lambda deploy` upload only `bootstrap`, so a deployed function
//! can only find its model if it travels inside the binary. `build.rs` picks the file at build
//! time: `EMBED_MODEL_PATH` if set, else `model/densenet121.nnef.tar` (what
//! `densenet-lambda fetch-model` writes), else `model/densenet121.onnx`.
//!
//! With none of them, the build still succeeds (with a warning) and [`model`] is `None`: the
//! binary loads `MODEL_PATH` or the default files at run time, which is what `cargo run` and
//! `cargo lambda watch` want. Only a release `cargo lambda build` (the deployment artifact,
//! also what `sam build` runs) refuses to build without one. An ONNX file whose weights live in
//! a side file (`.onnx.data`) is never embedded: bytes alone cannot be loaded; build.rs names
//! the `densenet-lambda convert` command that makes it one file.

use super::source::ModelSource;

/// The embedded model, if this binary was built with one.
#[cfg(embedded_model)]
pub fn model() -> Option<ModelSource> {
    Some(ModelSource::Embedded {
        name: env!("EMBEDDED_MODEL_NAME"),
        bytes: include_bytes!(env!("EMBEDDED_MODEL_PATH")),
    })
}

/// The embedded model, if this binary was built with one.
#[cfg(not(embedded_model))]
pub fn model() -> Option<ModelSource> {
    None
}
