//! A torchvision checkpoint → the model file the function runs, without Python.
//!
//! `densenet-lambda import-weights WEIGHTS.pth OUT` (and `fetch-model`, after its download):
//! read and check the checkpoint ([`super::checkpoint`]), lay DenseNet-121 out around the
//! weights as ONNX ([`super::densenet`]), let tract parse and declutter it (which also proves
//! tract can run it), then write either that ONNX file or the decluttered NNEF archive that
//! `convert` writes, atomically.

use std::path::Path;

use prost::Message;

use crate::model::{decluttered_from_onnx, write_nnef_archive, ModelError};

use super::checkpoint::{read_densenet121, CheckpointError};
use super::densenet;

/// What `import_weights` writes, chosen from the output path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// A self-contained ONNX file (`.onnx`): portable, checkable with onnxruntime.
    Onnx,
    /// tract's decluttered NNEF archive (anything else; `.nnef.tar` by convention): loads in
    /// about 57% of the ONNX's time, so the shorter cold start.
    Nnef,
}

impl OutputFormat {
    /// `.onnx` (any case) → ONNX; anything else → NNEF.
    pub fn for_path(out: &Path) -> OutputFormat {
        match out.extension() {
            Some(ext) if ext.eq_ignore_ascii_case("onnx") => OutputFormat::Onnx,
            _ => OutputFormat::Nnef,
        }
    }
}

/// Why a checkpoint could not become a model file. Nothing is left at the output path.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The checkpoint is unreadable or not DenseNet-121.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// tract refused the graph built from the weights, or the output could not be written.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Turns a torchvision DenseNet-121 checkpoint (`densenet121-a639ec97.pth`, legacy or zip)
/// into a model file at `out`: `.onnx` → the ONNX model; anything else (by convention
/// `.nnef.tar`) → the decluttered NNEF archive `densenet-lambda convert` writes. Written
/// atomically: on any failure nothing is left at `out`. Creates `out`'s folder if missing.
pub fn import_weights(checkpoint: &Path, out: &Path) -> Result<(), ImportError> {
    let weights = read_densenet121(checkpoint)?;
    let proto = densenet::onnx_model(&weights).map_err(|reason| ModelError::Invalid {
        path: checkpoint.display().to_string(),
        reason,
    })?;
    drop(weights);
    let bytes = proto.encode_to_vec();
    drop(proto);
    let built_from = format!("DenseNet-121 built from {}", checkpoint.display());
    let model =
        decluttered_from_onnx(&bytes).map_err(|e| ModelError::invalid(built_from.clone(), &e))?;
    match OutputFormat::for_path(out) {
        OutputFormat::Nnef => write_nnef_archive(&model, &built_from, out)?,
        OutputFormat::Onnx => {
            drop(model);
            crate::atomic_file::write_atomically(out, |w| std::io::Write::write_all(w, &bytes))
                .map_err(|e| ModelError::Write {
                    path: out.display().to_string(),
                    reason: e.to_string(),
                })?
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extension_picks_the_format() {
        assert_eq!(
            OutputFormat::for_path(Path::new("a/b.onnx")),
            OutputFormat::Onnx
        );
        assert_eq!(
            OutputFormat::for_path(Path::new("B.ONNX")),
            OutputFormat::Onnx
        );
        assert_eq!(
            OutputFormat::for_path(Path::new("model/densenet121.nnef.tar")),
            OutputFormat::Nnef
        );
        assert_eq!(
            OutputFormat::for_path(Path::new("model")),
            OutputFormat::Nnef
        );
    }

    #[test]
    fn a_bad_checkpoint_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let pth = dir.path().join("bad.pth");
        std::fs::write(&pth, b"not a checkpoint").unwrap();
        let out = dir.path().join("out.nnef.tar");
        let err = import_weights(&pth, &out).unwrap_err();
        assert!(err.to_string().contains("bad.pth"), "{err}");
        assert!(!out.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
