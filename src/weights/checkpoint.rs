//! Reads a torchvision DenseNet-121 checkpoint (`.pth`) into [`Weights`], checked tensor by
//! tensor against the architecture.
//!
//! torchvision's published `densenet121-a639ec97.pth` is a pre-1.6 `torch.save` stream whose
//! dense-layer names predate today's (`…denselayer1.norm.1.weight` for `…norm1.weight`); a
//! `torch.save(model.state_dict())` from a current PyTorch is a zip archive with today's names
//! and `num_batches_tracked` counters. Both are read with the `pytorch-reader` crate (Burn's
//! reader, which also ignores where a storage lived, so a checkpoint saved from a GPU reads the
//! same), renamed the way torchvision's own loader renames them, and checked so a wrong file
//! fails here with a message rather than as a model that answers nonsense.

use std::collections::BTreeMap;
use std::path::Path;

use pytorch_reader::{DType, PytorchReader};

use super::densenet::{parameters, Weights};

/// Why a checkpoint cannot become DenseNet-121's weights.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Not a PyTorch checkpoint at all, or unreadable.
    #[error("cannot read the PyTorch checkpoint {path}: {reason}; expected a file written by torch.save, such as torchvision's densenet121-a639ec97.pth (`densenet-lambda fetch-model` downloads it)")]
    Unreadable { path: String, reason: String },
    /// Expected tensors are absent.
    #[error("{path} is not a torchvision DenseNet-121 checkpoint: {count} of its {expected} tensors are missing ({names}); use torchvision's densenet121-a639ec97.pth or `torch.save(torchvision.models.densenet121(...).state_dict(), PATH)`")]
    Missing {
        path: String,
        count: usize,
        expected: usize,
        names: String,
    },
    /// A tensor has the wrong shape (another DenseNet variant, say).
    #[error("{path} is not a torchvision DenseNet-121 checkpoint: {name} has shape {found:?}, expected {expected:?}; use torchvision's densenet121-a639ec97.pth (densenet169 and others have other shapes)")]
    Shape {
        path: String,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A tensor is not float32.
    #[error("{path}: the tensor {name} is {found}, expected float32; save the model in float32 (`model.float()`) before `torch.save`")]
    DType {
        path: String,
        name: String,
        found: String,
    },
    /// Tensors DenseNet-121 does not have (what `load_state_dict(strict=True)` refuses).
    #[error("{path} is not a torchvision DenseNet-121 checkpoint: it has {count} tensors DenseNet-121 does not ({names}); use torchvision's densenet121-a639ec97.pth")]
    Unexpected {
        path: String,
        count: usize,
        names: String,
    },
    /// A tensor's bytes could not be read (a truncated or corrupt file).
    #[error("cannot read the tensor {name} from {path}: {reason}; the file is damaged or truncated, download it again")]
    Read {
        path: String,
        name: String,
        reason: String,
    },
}

/// Reads and checks DenseNet-121's 606 tensors from a torchvision checkpoint, legacy or zip,
/// under today's names. A checkpoint that nests the state dict under one key (`state_dict`,
/// `model`, DataParallel's `module`) is read from under that key.
pub fn read_densenet121(path: &Path) -> Result<Weights, CheckpointError> {
    let shown = path.display().to_string();
    if !path.is_file() {
        return Err(CheckpointError::Unreadable {
            path: shown,
            reason: "no such file".into(),
        });
    }
    let reader = PytorchReader::new(path).map_err(|e| CheckpointError::Unreadable {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let tensors = reader.into_tensors();
    let prefix = state_dict_prefix(tensors.keys().map(String::as_str));
    let mut by_name = BTreeMap::new();
    let mut unexpected = Vec::new();
    for (raw, tensor) in tensors {
        let Some(name) = raw.strip_prefix(&prefix) else {
            unexpected.push(raw);
            continue;
        };
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        let name = modern_name(name);
        if by_name.insert(name.clone(), tensor).is_some() {
            // Both the legacy and today's name of one tensor.
            unexpected.push(raw);
        }
    }
    let expected = parameters();
    let missing: Vec<String> = expected
        .iter()
        .filter(|p| !by_name.contains_key(&p.name))
        .map(|p| format!("{} {:?}", p.name, p.shape))
        .collect();
    if !missing.is_empty() {
        return Err(CheckpointError::Missing {
            path: shown,
            count: missing.len(),
            expected: expected.len(),
            names: first_few(&missing),
        });
    }
    let mut weights = Weights::new();
    for p in &expected {
        let tensor = by_name.remove(&p.name).expect("checked above");
        if tensor.shape() != p.shape.as_slice() {
            return Err(CheckpointError::Shape {
                path: shown,
                name: p.name.clone(),
                expected: p.shape.clone(),
                found: tensor.shape().to_vec(),
            });
        }
        if tensor.dtype() != DType::F32 {
            return Err(CheckpointError::DType {
                path: shown,
                name: p.name.clone(),
                found: format!("{:?}", tensor.dtype()),
            });
        }
        let bytes = tensor.read().map_err(|e| CheckpointError::Read {
            path: shown.clone(),
            name: p.name.clone(),
            reason: e.to_string(),
        })?;
        // pytorch-reader hands back native-endian bytes (it reads little-endian files only).
        let values = bytes
            .chunks_exact(4)
            .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        weights.insert(p.name.clone(), values);
    }
    unexpected.extend(by_name.into_keys());
    if !unexpected.is_empty() {
        unexpected.sort();
        return Err(CheckpointError::Unexpected {
            path: shown,
            count: unexpected.len(),
            names: first_few(&unexpected),
        });
    }
    Ok(weights)
}

/// Today's name of a state-dict entry: torchvision's `_load_state_dict` renames the legacy
/// dense-layer names with `^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$`,
/// joining the two groups without the dot (`…denselayer1.norm.1.weight` → `…denselayer1.norm1.weight`).
/// Other names are returned unchanged.
pub fn modern_name(name: &str) -> String {
    let parts: Vec<&str> = name.rsplitn(4, '.').collect();
    // parts (reversed): field, "1"/"2", "norm"/"relu"/"conv", everything before.
    if let [field, index, kind, head] = parts[..] {
        let layer_ok = head
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .ends_with("denselayer")
            && head.ends_with(|c: char| c.is_ascii_digit());
        if layer_ok
            && matches!(kind, "norm" | "relu" | "conv")
            && matches!(index, "1" | "2")
            && matches!(field, "weight" | "bias" | "running_mean" | "running_var")
        {
            return format!("{head}.{kind}{index}.{field}");
        }
    }
    name.to_string()
}

/// The key prefix under which the state dict sits: empty for a bare state dict, else the
/// path to `features.conv0.weight` (`state_dict.`, `module.`, …), if exactly one holds it.
fn state_dict_prefix<'a>(names: impl Iterator<Item = &'a str>) -> String {
    const ANCHOR: &str = "features.conv0.weight";
    let prefixes: Vec<&str> = names
        .filter_map(|n| n.strip_suffix(ANCHOR))
        .filter(|p| p.is_empty() || p.ends_with('.'))
        .collect();
    match prefixes[..] {
        [one] => one.to_string(),
        _ => String::new(),
    }
}

/// Up to five names, then how many more.
fn first_few(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    let mut text = shown.join(", ");
    if names.len() > shown.len() {
        text.push_str(&format!(", and {} more", names.len() - shown.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_names_are_renamed_like_torchvision() {
        for (legacy, modern) in [
            (
                "features.denseblock1.denselayer1.norm.1.weight",
                "features.denseblock1.denselayer1.norm1.weight",
            ),
            (
                "features.denseblock3.denselayer24.conv.2.weight",
                "features.denseblock3.denselayer24.conv2.weight",
            ),
            (
                "features.denseblock2.denselayer10.norm.2.running_var",
                "features.denseblock2.denselayer10.norm2.running_var",
            ),
            (
                "module.features.denseblock1.denselayer1.norm.1.bias",
                "module.features.denseblock1.denselayer1.norm1.bias",
            ),
        ] {
            assert_eq!(modern_name(legacy), modern, "{legacy}");
        }
        for unchanged in [
            "features.denseblock1.denselayer1.norm1.weight",
            "features.transition1.norm.weight",
            "features.denseblock1.denselayer1.norm.3.weight",
            "features.denseblock1.denselayer.norm.1.weight",
            "features.denseblock1.denselayer1.pool.1.weight",
            "features.denseblock1.denselayer1.norm.1.num_batches_tracked",
            "classifier.weight",
            "norm.1.weight",
        ] {
            assert_eq!(modern_name(unchanged), unchanged);
        }
    }

    #[test]
    fn a_nested_state_dict_is_found_under_its_key() {
        let names = ["state_dict.features.conv0.weight", "epoch"];
        assert_eq!(state_dict_prefix(names.into_iter()), "state_dict.");
        let names = ["features.conv0.weight", "classifier.bias"];
        assert_eq!(state_dict_prefix(names.into_iter()), "");
        let names = ["xfeatures.conv0.weight"];
        assert_eq!(state_dict_prefix(names.into_iter()), "");
    }

    #[test]
    fn a_missing_file_names_the_file() {
        let err = read_densenet121(Path::new("/nonexistent/densenet.pth")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/densenet.pth"), "{text}");
        assert!(text.contains("fetch-model"), "{text}");
    }
}
