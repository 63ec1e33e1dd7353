//! Why a model cannot answer. Every variant is our fault, not the client's (HTTP 500), and each
//! message names the file and the fix.

use tract_onnx::prelude::TractError;

/// Why the model cannot answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    /// Nothing at the configured path.
    #[error("the model file {path} does not exist; create it with `densenet-lambda fetch-model` (torchvision's DenseNet-121 weights), `densenet-lambda import-weights WEIGHTS.pth OUT` or `python3 model/export_densenet121.py`, or set MODEL_PATH to an ONNX image classifier taking a [1,3,224,224] f32 input")]
    Missing { path: String },
    /// The file exists but tract cannot load it as a classifier with the expected contract.
    #[error("the model {path} could not be loaded ({reason}); set MODEL_PATH to an ONNX image classifier with one [1,3,224,224] f32 input and one [1,N] output, or re-export it with `python3 model/export_densenet121.py`")]
    Invalid { path: String, reason: String },
    /// tract failed while running a loaded model.
    #[error("the model failed while running: {0}")]
    Run(String),
    /// The file was missing and the source's [`MakeMissing`](super::MakeMissing) could not make
    /// it; the message is the maker's own (what failed, and the routes that need no network).
    #[error("{0}")]
    NotMade(String),
    /// A model file could not be written (nothing was left at the path).
    #[error("cannot write the model file {path} ({reason}); check that its folder is writable and the disk has room")]
    Write { path: String, reason: String },
}

impl ModelError {
    /// `Invalid` for a tract error about the model named `path`.
    pub fn invalid(path: impl Into<String>, error: &TractError) -> ModelError {
        ModelError::Invalid {
            path: path.into(),
            reason: one_line(error),
        }
    }

    /// `Write` for a tract error while writing `path`.
    pub fn write(path: impl Into<String>, error: &TractError) -> ModelError {
        ModelError::Write {
            path: path.into(),
            reason: one_line(error),
        }
    }
}

/// A tract error with its chain of causes, on one line (replies and log lines are one line each).
pub fn one_line(error: &TractError) -> String {
    format!("{error:#}").replace('\n', " ")
}
