//! Where the model comes from: a file, the bytes compiled into the binary, or a file to be made
//! on first use by whatever the caller hands over. This module never decides to download: the
//! binary does (`serve` and `classify` fetch torchvision's weights; the Lambda function refuses to
//! start without a model), so the core never reaches the network.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the model comes from.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// An ONNX file or NNEF archive on disk (`MODEL_PATH`, or the default location).
    File(PathBuf),
    /// A model compiled into the binary (the `embed-model` feature), so a deployed Lambda
    /// needs nothing beside `bootstrap`.
    Embedded {
        name: &'static str,
        bytes: &'static [u8],
    },
    /// A file that `maker` makes at `path` on the first load that finds it missing, as the
    /// tutorial downloads its weights on its first run.
    Made { path: PathBuf, maker: MakeMissing },
}

impl ModelSource {
    /// How the model is named in replies and error messages.
    pub fn describe(&self) -> String {
        match self {
            ModelSource::File(path) => path.display().to_string(),
            ModelSource::Embedded { name, .. } => format!("{name} (embedded)"),
            ModelSource::Made { path, maker } => format!("{} ({})", path.display(), maker.how),
        }
    }

    /// The file the model is read from, if it lives in one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ModelSource::File(path) | ModelSource::Made { path, .. } => Some(path),
            ModelSource::Embedded { .. } => None,
        }
    }
}

/// Makes a missing model file: what the caller of the loader wants done when the file is not
/// there yet. Its error message becomes [`ModelError::NotMade`](super::ModelError::NotMade)'s.
#[derive(Clone)]
pub struct MakeMissing {
    /// How the source reads in messages (`fetched on first use`).
    pub how: &'static str,
    /// Writes the model file at the path, or says why it could not.
    pub make: Arc<MakeFile>,
}

/// What [`MakeMissing::make`] runs: writes the model file at the path, or says why it could not.
pub type MakeFile = dyn Fn(&Path) -> Result<(), String> + Send + Sync;

impl std::fmt::Debug for MakeMissing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MakeMissing")
            .field("how", &self.how)
            .finish()
    }
}

/// The converted model, relative to the working directory (and to the crate for the build):
/// the first place `serve` and the build look, and where `fetch-model` writes by default.
pub const DEFAULT_NNEF_PATH: &str = "model/densenet121.nnef.tar";

/// The ONNX model, relative to the working directory (and to the crate for the build): where
/// `serve` and the build look when there is no converted model.
pub const DEFAULT_ONNX_PATH: &str = "model/densenet121.onnx";

/// The documented default model file in the working directory, if there is one: the converted
/// [`DEFAULT_NNEF_PATH`] (it loads faster), else [`DEFAULT_ONNX_PATH`].
pub fn default_model_file() -> Option<&'static Path> {
    [DEFAULT_NNEF_PATH, DEFAULT_ONNX_PATH]
        .into_iter()
        .map(Path::new)
        .find(|path| path.is_file())
}
