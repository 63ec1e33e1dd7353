//! What `GET /model` reports: which model file, its checksum, its contract, whether it is loaded.
//! Asking never loads the model (that is the preload's or the first `/predict`'s job).

use std::collections::BTreeMap;

use once_cell::sync::OnceCell;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::{LazyModel, ModelSource, TRACT_VERSION};
use crate::preprocess::CROP;

/// `GET /model`'s reply. Keys in alphabetical order, as every reply here.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    /// Number of classes the model scores (known once loaded).
    pub classes: Option<usize>,
    /// The model file name (`…(embedded)` when compiled in).
    pub file: String,
    /// Input shape the model is run with.
    pub input_shape: [usize; 4],
    /// Whether the model has been loaded in this process.
    pub loaded: bool,
    /// Time the load took, in milliseconds.
    pub load_ms: Option<f64>,
    /// Output shape (known once loaded).
    pub output_shape: Option<[usize; 2]>,
    /// The matrix-product kernels tract chose on this CPU, with how many products use each
    /// (known once loaded): the first thing to look at when speed differs between machines.
    pub matmul_kernels: Option<BTreeMap<String, usize>>,
    /// SHA-256 of the model file, hex.
    pub sha256: Option<String>,
    /// The tract version that runs it.
    pub tract_version: &'static str,
}

/// Caches the model file's checksum: hashing 32 MB once is fine, on every call it is not.
#[derive(Debug, Default)]
pub struct ChecksumCache(OnceCell<String>);

impl ChecksumCache {
    /// The file's sha256, computed once; a file that is not there yet (a model still to be
    /// fetched) is looked at again next time.
    fn get(&self, source: &ModelSource) -> Option<String> {
        self.0
            .get_or_try_init(|| {
                let digest = match source {
                    ModelSource::Embedded { bytes, .. } => Sha256::digest(bytes),
                    ModelSource::File(path) | ModelSource::Made { path, .. } => {
                        Sha256::digest(std::fs::read(path).map_err(drop)?)
                    }
                };
                Ok::<_, ()>(digest.iter().map(|b| format!("{b:02x}")).collect())
            })
            .ok()
            .cloned()
    }
}

/// Describes the model without loading it.
pub fn describe(model: &LazyModel, checksums: &ChecksumCache) -> ModelInfo {
    let loaded = model.loaded();
    let side = CROP as usize;
    ModelInfo {
        classes: loaded.map(|m| m.classes()),
        file: match model.source() {
            ModelSource::File(path) | ModelSource::Made { path, .. } => {
                path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                )
            }
            source => source.describe(),
        },
        input_shape: [1, 3, side, side],
        loaded: loaded.is_some(),
        load_ms: loaded.map(|m| (m.load_time().as_secs_f64() * 1e4).round() / 10.0),
        matmul_kernels: loaded.map(|m| m.matmul_kernels()),
        output_shape: loaded.map(|m| [1, m.classes()]),
        sha256: checksums.get(model.source()),
        tract_version: TRACT_VERSION,
    }
}
