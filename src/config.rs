//! Settings from the environment, read once at start-up, with the reasons for each default.

use std::path::PathBuf;
use std::sync::Arc;

use crate::api::{App, Features};
use crate::classifier::Classifier;
use crate::cors::Cors;
use crate::labels::Labels;
use crate::model::{self, LazyModel, ModelOptions, ModelSource};
use crate::preprocess::DecodeOptions;
use crate::upload::UploadLimits;

/// A setting that is present but unusable: start-up stops with this message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A numeric variable does not parse or is out of range.
    #[error("{name}={value:?} is not valid: {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    /// `LABELS_PATH` names an unusable file.
    #[error(transparent)]
    Labels(#[from] crate::labels::LabelsError),
    /// The classification threads could not be started.
    #[error("cannot start the classification threads: {0}")]
    Threads(std::io::Error),
}

/// Everything the service can be told from outside.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the model comes from (`MODEL_PATH`; else the embedded model; else model/densenet121.onnx).
    pub model: ModelSource,
    /// Threads for inference (`MODEL_THREADS`, default: available CPUs).
    pub model_options: ModelOptions,
    /// A label file of the tutorial's shape (`LABELS_PATH`); the built-in ImageNet labels otherwise.
    pub labels_path: Option<PathBuf>,
    /// Request limits (`MAX_BODY_BYTES`, `MAX_PARTS`).
    pub upload: UploadLimits,
    /// Decode limits and speed-ups (`MAX_IMAGE_DIMENSION`, `MAX_DECODE_BYTES`, else derived from
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, `JPEG_DCT_SCALING`).
    pub decode: DecodeOptions,
    /// Opt-in additions (`CORS_ALLOW_ORIGINS`, `UI_ENABLED`).
    pub features: Features,
    /// Whether the server and the Lambda start loading the model at start-up, in the background
    /// (`PRELOAD_MODEL`, default on; `0` loads it on the first `/predict` instead).
    pub preload_model: bool,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let model = match lookup("MODEL_PATH").filter(|p| !p.is_empty()) {
            Some(path) => ModelSource::File(PathBuf::from(path)),
            None => crate::embedded::model()
                .unwrap_or_else(|| ModelSource::File(model::default_model_path().to_path_buf())),
        };
        let number = |name: &'static str,
                      default: usize,
                      expected: &'static str|
         -> Result<usize, ConfigError> {
            match lookup(name) {
                None => Ok(default),
                Some(value) => match value.trim().parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(ConfigError::Invalid {
                        name,
                        value,
                        expected,
                    }),
                },
            }
        };
        let upload_defaults = UploadLimits::default();
        // Under Lambda the decode budget follows the function's memory (MB, set by Lambda);
        // an explicit MAX_DECODE_BYTES still wins.
        let decode_defaults = match lookup("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
            .and_then(|mb| mb.trim().parse::<u64>().ok())
        {
            Some(mb) => DecodeOptions::for_function_memory(mb),
            None => DecodeOptions::default(),
        };
        Ok(Config {
            model,
            model_options: ModelOptions {
                threads: number(
                    "MODEL_THREADS",
                    ModelOptions::default().threads,
                    "a positive thread count",
                )?,
            },
            labels_path: lookup("LABELS_PATH")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            upload: UploadLimits {
                max_body_bytes: number(
                    "MAX_BODY_BYTES",
                    upload_defaults.max_body_bytes,
                    "a positive byte count",
                )?,
                max_parts: number(
                    "MAX_PARTS",
                    upload_defaults.max_parts,
                    "a positive part count",
                )?,
            },
            decode: DecodeOptions {
                max_dimension: number(
                    "MAX_IMAGE_DIMENSION",
                    decode_defaults.max_dimension as usize,
                    "a positive pixel count",
                )?
                .min(u32::MAX as usize) as u32,
                max_alloc_bytes: number(
                    "MAX_DECODE_BYTES",
                    decode_defaults.max_alloc_bytes as usize,
                    "a positive byte count",
                )? as u64,
                jpeg_dct_scaling: lookup("JPEG_DCT_SCALING").as_deref().map(str::trim) != Some("0"),
            },
            features: Features {
                cors: Cors::parse(lookup("CORS_ALLOW_ORIGINS").as_deref()),
                ui: matches!(
                    lookup("UI_ENABLED").as_deref().map(str::trim),
                    Some("1" | "true" | "yes")
                ),
            },
            preload_model: !matches!(
                lookup("PRELOAD_MODEL").as_deref().map(str::trim),
                Some("0" | "false" | "no")
            ),
        })
    }

    /// Builds the service; loads labels now (small), the model on first use or when the caller
    /// asks for the preload ([`App::preload`], which the server and the Lambda do when
    /// `preload_model` is on).
    pub fn build(&self) -> Result<App, ConfigError> {
        let labels = match &self.labels_path {
            Some(path) => Labels::from_json_file(path)?,
            None => Labels::imagenet(),
        };
        let model = LazyModel::new(self.model.clone(), self.model_options);
        let classifier = Classifier::new(model, labels, self.decode);
        let app = App::new(Arc::new(classifier), self.upload).map_err(ConfigError::Threads)?;
        Ok(app.with_features(self.features.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn preload_is_on_unless_turned_off() {
        assert!(config(&[]).unwrap().preload_model);
        assert!(config(&[("PRELOAD_MODEL", "1")]).unwrap().preload_model);
        for off in ["0", "false", " no "] {
            assert!(!config(&[("PRELOAD_MODEL", off)]).unwrap().preload_model);
        }
    }

    #[test]
    fn decode_budget_follows_the_function_memory_unless_set() {
        let budget = |vars: &[(&str, &str)]| config(vars).unwrap().decode.max_alloc_bytes;
        assert_eq!(budget(&[]), DecodeOptions::default().max_alloc_bytes);
        assert_eq!(
            budget(&[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")]),
            256 << 20
        );
        assert_eq!(
            budget(&[
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
                ("MAX_DECODE_BYTES", "1000000")
            ]),
            1_000_000
        );
        assert_eq!(
            budget(&[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "not a number")]),
            DecodeOptions::default().max_alloc_bytes
        );
    }

    #[test]
    fn thread_counts_must_be_positive_numbers() {
        assert_eq!(
            config(&[("MODEL_THREADS", "3")])
                .unwrap()
                .model_options
                .threads,
            3
        );
        for bad in ["0", "-1", "two"] {
            assert!(matches!(
                config(&[("MODEL_THREADS", bad)]),
                Err(ConfigError::Invalid {
                    name: "MODEL_THREADS",
                    ..
                })
            ));
        }
    }
}
