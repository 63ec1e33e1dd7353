//! ImageNet class index → the label the tutorial answers with.
//!
//! The tutorial reads `index_to_name.json` (index → `[WordNet id, label]`, the file Keras
//! publishes as `imagenet_class_index.json` and pytorch/serve ships as `index_to_name.json`) and
//! answers `"Unknown"` for an index it lacks. The same 1000 labels are compiled into the binary
//! (`imagenet_classes.txt`, one `wnid<TAB>label` per line) so a deployed function needs no side
//! file; `LABELS_PATH` points at another file of the tutorial's JSON shape for other models.

use std::collections::HashMap;
use std::path::Path;

/// The label answered for an index the label list does not cover, as the tutorial does.
pub const UNKNOWN: &str = "Unknown";

/// The ImageNet-1k labels, in class-index order, as `wnid<TAB>label` lines.
const IMAGENET: &str = include_str!("imagenet_classes.txt");

/// Maps a model's class index to a human-readable label.
#[derive(Debug, Clone)]
pub struct Labels {
    names: Vec<String>,
}

/// Why a label file given by the user could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    /// The file could not be read.
    #[error("cannot read the label file {path}: {source}; set LABELS_PATH to a readable index_to_name.json or unset it to use the built-in ImageNet labels")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is not `{"0": ["wnid", "label"], …}`.
    #[error("the label file {path} is not index_to_name.json-shaped ({reason}); expected {{\"0\": [\"n01440764\", \"tench\"], ...}}")]
    Shape { path: String, reason: String },
}

impl Labels {
    /// The built-in ImageNet-1k labels (identical to the tutorial's `index_to_name.json`).
    pub fn imagenet() -> Labels {
        let names = IMAGENET
            .lines()
            .map(|line| {
                line.split_once('\t')
                    .map_or(line, |(_, label)| label)
                    .to_owned()
            })
            .collect();
        Labels { names }
    }

    /// Reads a label file of the tutorial's shape: `{"<index>": ["<wnid>", "<label>"], …}`.
    pub fn from_json_file(path: &Path) -> Result<Labels, LabelsError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| LabelsError::Read {
            path: shown.clone(),
            source,
        })?;
        let map: HashMap<String, (String, String)> =
            serde_json::from_str(&text).map_err(|e| LabelsError::Shape {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        let mut names = vec![UNKNOWN.to_owned(); map.len()];
        for (key, (_, label)) in map {
            let index: usize = key.parse().map_err(|_| LabelsError::Shape {
                path: shown.clone(),
                reason: format!("key {key:?} is not a class index"),
            })?;
            if index >= names.len() {
                names.resize(index + 1, UNKNOWN.to_owned());
            }
            names[index] = label;
        }
        Ok(Labels { names })
    }

    /// The label of `index`, or `"Unknown"` when the list has none (as the tutorial answers).
    pub fn name(&self, index: usize) -> &str {
        self.names.get(index).map_or(UNKNOWN, String::as_str)
    }

    /// How many classes have labels.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no labels at all.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_labels_cover_imagenet() {
        let labels = Labels::imagenet();
        assert_eq!(labels.len(), 1000);
        assert_eq!(labels.name(0), "tench");
        assert_eq!(labels.name(285), "Egyptian_cat");
        assert_eq!(labels.name(1000), UNKNOWN);
    }
}
