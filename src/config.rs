//! Settings, read once at start-up from flags or the environment (clap), with the reason for
//! each default. The Lambda function is configured through the environment only; `serve` and
//! `classify` take the same settings as flags too, and their `--help` lists both.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{value_parser, ArgAction, Args, Parser};

use densenet_lambda::classifier::Classifier;
use densenet_lambda::http::metrics::{Metrics, DEFAULT_NAMESPACE};
use densenet_lambda::http::upload::UploadLimits;
use densenet_lambda::http::{layers, App, Features, DEFAULT_TIMEOUT};
use densenet_lambda::labels::{Labels, LabelsError};
use densenet_lambda::model::{self, LazyModel, ModelOptions, ModelSource};
use densenet_lambda::preprocess::DecodeOptions;

/// Why the service cannot start with these settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `LABELS_PATH` names an unusable file.
    #[error(transparent)]
    Labels(#[from] LabelsError),
    /// The classification threads could not be started.
    #[error("cannot start the classification threads: {0}")]
    Threads(std::io::Error),
}

/// Everything the service can be told from outside. Each setting is a flag of `serve` and
/// `classify` and an environment variable (the flag wins).
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Model file: ONNX (external weights beside it are fine) or the NNEF archive `convert`
    /// writes, with input [1,3,224,224] f32. Default: the model compiled into the binary, else
    /// model/densenet121.nnef.tar, else model/densenet121.onnx.
    #[arg(long = "model", env = "MODEL_PATH", value_name = "PATH")]
    pub model_path: Option<PathBuf>,

    /// Labels in the tutorial's index_to_name.json shape. Default: the built-in ImageNet labels.
    #[arg(long = "labels", env = "LABELS_PATH", value_name = "PATH")]
    pub labels_path: Option<PathBuf>,

    /// Threads per inference. Default: the available CPUs (one request at a time on all of
    /// them, the fastest answer); CPUs ÷ this many requests are classified at once.
    #[arg(long, env = "MODEL_THREADS", value_name = "N",
          value_parser = value_parser!(u16).range(1..))]
    pub model_threads: Option<u16>,

    /// Load the model in the background at start-up (false: on the first /predict).
    #[arg(long, env = "PRELOAD_MODEL", value_name = "BOOL", default_value = "true",
          value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub preload_model: bool,

    /// Largest request body in bytes (413 above). 6 MiB: Lambda's synchronous payload cap is
    /// 6 MB, so no larger body can reach the function.
    #[arg(long, env = "MAX_BODY_BYTES", value_name = "BYTES", default_value_t = UploadLimits::default().max_body_bytes as u64,
          value_parser = value_parser!(u64).range(1..))]
    pub max_body_bytes: u64,

    /// Most multipart parts read (400 above): room for a few images and fields, not a flood.
    #[arg(long, env = "MAX_PARTS", value_name = "N", default_value_t = UploadLimits::default().max_parts as u32,
          value_parser = value_parser!(u32).range(1..))]
    pub max_parts: u32,

    /// Largest image width or height decoded (413 above, checked from the header).
    #[arg(long, env = "MAX_IMAGE_DIMENSION", value_name = "PIXELS", default_value_t = DecodeOptions::default().max_dimension,
          value_parser = value_parser!(u32).range(1..))]
    pub max_image_dimension: u32,

    /// Most memory one decode may allocate, counting every copy, in bytes (413 above, checked
    /// from the header). Default: 512 MiB, or under Lambda a share of the function's memory.
    #[arg(long, env = "MAX_DECODE_BYTES", value_name = "BYTES",
          value_parser = value_parser!(u64).range(1..))]
    pub max_decode_bytes: Option<u64>,

    /// The function's memory in MB, which Lambda sets: the decode budget becomes
    /// 3/4 of it minus 128 MiB for the process (between 16 and 512 MiB).
    #[arg(long, env = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", value_name = "MB",
          value_parser = value_parser!(u64).range(1..))]
    pub function_memory_mb: Option<u64>,

    /// Most decode work one request may take, in milliseconds as estimated from each image's
    /// header and stream on the reference core (AMD EPYC Zen 3); an upload that would take
    /// longer (a progressive JPEG of a thousand scans, a deflate bomb) is refused with a 413
    /// before decoding. A request's images share it.
    #[arg(long, env = "MAX_DECODE_MS", value_name = "MS",
          default_value_t = DecodeOptions::default().max_work_ns / 1_000_000,
          value_parser = value_parser!(u64).range(1..))]
    pub max_decode_ms: u64,

    /// Decode large JPEGs at a reduced DCT scale before the exact resize (false: full size).
    #[arg(long, env = "JPEG_DCT_SCALING", value_name = "BOOL", default_value = "true",
          value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub jpeg_dct_scaling: bool,

    /// Browser origins allowed to call the API: `*` or a comma-separated list. Default: none.
    #[arg(long, env = "CORS_ALLOW_ORIGINS", value_name = "ORIGINS")]
    pub cors_allow_origins: Option<String>,

    /// Serve an upload page at GET /ui.
    #[arg(long = "ui", env = "UI_ENABLED", value_name = "BOOL", default_value = "false",
          num_args = 0..=1, default_missing_value = "true",
          value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub ui_enabled: bool,

    /// Serve the API documentation (Swagger UI) at GET /docs.
    #[arg(long = "docs", env = "DOCS_ENABLED", value_name = "BOOL", default_value = "false",
          num_args = 0..=1, default_missing_value = "true",
          value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub docs_enabled: bool,

    /// Write one CloudWatch Embedded Metric Format record per prediction to stdout (phase
    /// milliseconds, a cold-start flag, the class), which Lambda turns into metrics.
    #[arg(long, env = "CLOUDWATCH_METRICS", value_name = "BOOL", default_value = "false",
          num_args = 0..=1, default_missing_value = "true",
          value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub cloudwatch_metrics: bool,

    /// The CloudWatch namespace of those metrics.
    #[arg(long, env = "CLOUDWATCH_METRICS_NAMESPACE", value_name = "NAME",
          default_value = DEFAULT_NAMESPACE)]
    pub cloudwatch_metrics_namespace: String,

    /// Seconds a request may take before it is answered with a 503: under API Gateway's
    /// 29-second limit, so clients get the JSON reply rather than a gateway error.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", value_name = "SECONDS",
          default_value_t = DEFAULT_TIMEOUT.as_secs(),
          value_parser = value_parser!(u64).range(1..))]
    pub request_timeout_secs: u64,
}

/// The settings alone, for the Lambda function (no command line, only the environment).
#[derive(Parser)]
#[command(name = "densenet-lambda")]
struct EnvOnly {
    #[command(flatten)]
    settings: Settings,
}

impl Settings {
    /// Reads the settings from the process environment alone (the Lambda function's way).
    pub fn from_env() -> Result<Settings, clap::Error> {
        EnvOnly::try_parse_from(["densenet-lambda"]).map(|e| e.settings)
    }

    /// Where the model comes from: `MODEL_PATH`, else the model compiled in, else the default
    /// files in the working directory (the NNEF archive first); `None` when there is none yet
    /// (`serve` and `classify` then fetch torchvision's weights; the Lambda function refuses to
    /// start).
    pub fn model_source(&self) -> Option<ModelSource> {
        if let Some(path) = &self.model_path {
            return Some(ModelSource::File(path.clone()));
        }
        if let Some(embedded) = model::embedded::model() {
            return Some(embedded);
        }
        model::default_model_file().map(|path| ModelSource::File(path.to_path_buf()))
    }

    /// Request limits.
    pub fn upload_limits(&self) -> UploadLimits {
        UploadLimits {
            max_body_bytes: usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX),
            max_parts: self.max_parts as usize,
        }
    }

    /// Decode limits and speed-ups; under Lambda the decode budget follows the function's
    /// memory, and an explicit `MAX_DECODE_BYTES` still wins.
    pub fn decode_options(&self) -> DecodeOptions {
        let defaults = match self.function_memory_mb {
            Some(mb) => DecodeOptions::for_function_memory(mb),
            None => DecodeOptions::default(),
        };
        DecodeOptions {
            max_dimension: self.max_image_dimension,
            max_alloc_bytes: self.max_decode_bytes.unwrap_or(defaults.max_alloc_bytes),
            jpeg_dct_scaling: self.jpeg_dct_scaling,
            max_work_ns: self.max_decode_ms.saturating_mul(1_000_000),
        }
    }

    /// The opt-in features.
    pub fn features(&self) -> Features {
        Features {
            cors_origins: self
                .cors_allow_origins
                .as_deref()
                .map(layers::parse_origins)
                .unwrap_or_default(),
            ui: self.ui_enabled,
            docs: self.docs_enabled,
        }
    }

    /// How tract runs the model.
    pub fn model_options(&self) -> ModelOptions {
        match self.model_threads {
            Some(threads) => ModelOptions::threads(usize::from(threads)),
            None => ModelOptions::default(),
        }
    }

    /// Builds the service on a model source; loads labels now (small), the model on first use
    /// or when the caller asks for the preload ([`App::preload`]).
    pub fn build(&self, source: ModelSource) -> Result<App, ConfigError> {
        let labels = match &self.labels_path {
            Some(path) => Labels::from_json_file(path)?,
            None => Labels::imagenet(),
        };
        let model = LazyModel::new(source, self.model_options());
        let classifier = Classifier::new(model, labels, self.decode_options());
        let app =
            App::new(Arc::new(classifier), self.upload_limits()).map_err(ConfigError::Threads)?;
        let metrics = Metrics::new(
            self.cloudwatch_metrics
                .then(|| self.cloudwatch_metrics_namespace.clone()),
        );
        Ok(app
            .with_features(self.features())
            .with_timeout(Duration::from_secs(self.request_timeout_secs))
            .with_metrics(metrics))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, clap::Error> {
        EnvOnly::try_parse_from(std::iter::once("densenet-lambda").chain(args.iter().copied()))
            .map(|e| e.settings)
    }

    #[test]
    fn preload_is_on_unless_turned_off() {
        assert!(parse(&[]).unwrap().preload_model);
        assert!(parse(&["--preload-model", "1"]).unwrap().preload_model);
        for off in ["0", "false", "no", "off"] {
            assert!(!parse(&["--preload-model", off]).unwrap().preload_model);
        }
        assert!(parse(&["--preload-model", "maybe"]).is_err());
    }

    #[test]
    fn decode_budget_follows_the_function_memory_unless_set() {
        let budget = |args: &[&str]| parse(args).unwrap().decode_options().max_alloc_bytes;
        assert_eq!(budget(&[]), DecodeOptions::default().max_alloc_bytes);
        assert_eq!(budget(&["--function-memory-mb", "512"]), 256 << 20);
        assert_eq!(
            budget(&[
                "--function-memory-mb",
                "512",
                "--max-decode-bytes",
                "1000000"
            ]),
            1_000_000
        );
        assert!(parse(&["--function-memory-mb", "not a number"]).is_err());
    }

    #[test]
    fn thread_counts_must_be_positive_numbers() {
        assert_eq!(
            parse(&["--model-threads", "3"])
                .unwrap()
                .model_options()
                .threads,
            3
        );
        for bad in ["0", "-1", "two"] {
            let error = parse(&[&format!("--model-threads={bad}")]).unwrap_err();
            assert!(error.to_string().contains("--model-threads"), "{error}");
        }
    }

    #[test]
    fn opt_in_features_are_off_by_default() {
        let features = parse(&[]).unwrap().features();
        assert!(!features.cors() && !features.ui && !features.docs);
        let features = parse(&[
            "--ui",
            "--docs",
            "--cors-allow-origins",
            "https://a.example/, *",
        ])
        .unwrap()
        .features();
        assert!(features.ui && features.docs);
        assert_eq!(features.cors_origins, ["https://a.example", "*"]);
    }
}
