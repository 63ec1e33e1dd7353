//! The model compiled into the binary by the `embed-model` feature (on by default).
//!
//! SAM's Rust builder and `cargo lambda deploy` upload only `bootstrap`, so a deployed function
//! can only find its model if it travels inside the binary. `build.rs` picks the file
//! (`EMBED_MODEL_PATH`, default `model/densenet121.onnx`) at build time.

use crate::model::ModelSource;

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
