//! `densenet-lambda`: picks the mode (the Lambda function, `serve`, `classify`, model tools), reads
//! the settings ([`config`]), and decides where the model comes from: a missing model is fetched
//! by `serve` and `classify`, never by the Lambda function.

#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use axum::body::Body;
use axum::http::{header::CONTENT_TYPE, Request};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use densenet_lambda::http::{self, App};
use densenet_lambda::model::{self, MakeMissing, ModelSource};
use densenet_lambda::weights::{fetch, import};
use densenet_lambda::{lambda, serve};
use http_body_util::BodyExt;
use tower::ServiceExt;

mod config;

use config::Settings;

/// ImageNet classification with DenseNet-121: the PyTorch Flask tutorial's API as an AWS Lambda
/// function, a local server and a command-line tool.
#[derive(Parser)]
#[command(name = "densenet-lambda", version, after_help = LAMBDA_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

const LAMBDA_HELP: &str = "\
Without a command, runs as the Lambda function: inside Lambda, or under `cargo lambda watch`
(both set AWS_LAMBDA_RUNTIME_API). It reads the environment variables that `serve --help` lists.";

#[derive(Subcommand)]
enum Command {
    /// Answer GET / and POST /predict over HTTP, like the tutorial's `flask run`
    ///
    /// Stops on SIGTERM or Ctrl-C after answering the requests in flight.
    Serve {
        /// Port to listen on.
        #[arg(long, env = "PORT", default_value_t = 5000)]
        port: u16,
        /// Address to listen on (0.0.0.0 for every interface, e.g. in a container).
        #[arg(long, env = "HOST", default_value = "127.0.0.1")]
        host: IpAddr,
        #[command(flatten)]
        settings: Settings,
    },
    /// Print what POST /predict answers for each image file, one JSON object per line
    Classify {
        /// Also print the k most probable classes with their probabilities (1 to 1000).
        #[arg(long, value_name = "K", value_parser = clap::value_parser!(u16).range(1..=1000))]
        topk: Option<u16>,
        /// Image files (JPEG, PNG, GIF, WebP, BMP or TIFF).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        settings: Settings,
    },
    /// Download torchvision's DenseNet-121 weights (the tutorial's model) and write the model
    /// file the function loads and embeds
    ///
    /// The checkpoint (densenet121-a639ec97.pth, checked against its sha256) goes to PyTorch's
    /// own cache, $TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints), so a
    /// machine that ran the tutorial downloads nothing.
    FetchModel {
        /// The model file to write: .onnx for ONNX, anything else for the NNEF archive the
        /// build and `serve` look for first.
        #[arg(long, value_name = "PATH", default_value = model::DEFAULT_NNEF_PATH)]
        out: PathBuf,
        /// Download from this URL instead of torchvision's (a mirror).
        #[arg(long, env = fetch::URL_VAR, value_name = "URL")]
        url: Option<String>,
        /// The expected sha256 (all 64 hex digits or a prefix of 8 or more); required with --url.
        #[arg(long, env = fetch::SHA256_VAR, value_name = "HEX")]
        sha256: Option<String>,
    },
    /// Turn a local DenseNet-121 checkpoint (.pth, as torchvision publishes it or as
    /// torch.save writes a state dict) into the model file
    ImportWeights {
        /// The checkpoint.
        #[arg(value_name = "WEIGHTS.pth")]
        weights: PathBuf,
        /// The model file to write: .onnx for ONNX, anything else (e.g. .nnef.tar) for the NNEF archive.
        #[arg(value_name = "OUT")]
        out: PathBuf,
    },
    /// Pre-process an ONNX model into tract's NNEF archive, which loads faster (a shorter cold
    /// start); use it anywhere an .onnx file goes (MODEL_PATH, EMBED_MODEL_PATH)
    Convert {
        /// The ONNX model (its external weights file, if any, beside it).
        #[arg(value_name = "IN.onnx")]
        input: PathBuf,
        /// The archive to write.
        #[arg(value_name = "OUT.nnef.tar")]
        output: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Serve {
            port,
            host,
            settings,
        }) => serve_mode(&settings, SocketAddr::new(host, port)),
        Some(Command::Classify {
            topk,
            files,
            settings,
        }) => classify_mode(&settings, topk, &files),
        Some(Command::Convert { input, output }) => convert_mode(&input, &output),
        Some(Command::FetchModel { out, url, sha256 }) => {
            fetch_model_mode(&out, url.as_deref(), sha256.as_deref())
        }
        Some(Command::ImportWeights { weights, out }) => {
            report(import::import_weights(&weights, &out), &out)
        }
        None if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() => lambda_mode(),
        None => {
            eprintln!(
                "AWS_LAMBDA_RUNTIME_API is not set, so this is not running inside Lambda.\n\
                 To try the function locally, run `densenet-lambda serve` and POST an image to\n\
                 http://127.0.0.1:5000/predict, or run it under `cargo lambda watch`.\n\
                 `densenet-lambda --help` lists every command."
            );
            ExitCode::from(2)
        }
    }
}

/// Builds the service, or explains what is wrong with the settings.
fn build(settings: &Settings, source: ModelSource) -> Result<App, ExitCode> {
    settings.build(source).map_err(|e| {
        eprintln!("densenet-lambda: {e}");
        ExitCode::from(2)
    })
}

/// The async runtime for I/O, on one thread: classification runs on `App`'s own worker threads,
/// and a second I/O thread measured no faster while it competed with inference for the CPUs.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
}

fn lambda_mode() -> ExitCode {
    lambda_http::tracing::init_default_subscriber();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("densenet-lambda: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(source) = settings.model_source() else {
        // Fail the function's init, where the log says why: a deployed function never downloads.
        eprintln!(
            "densenet-lambda: no model: this binary was built without one (no model file at build \
             time) and MODEL_PATH is not set. Run `densenet-lambda fetch-model` (or \
             `import-weights WEIGHTS.pth model/densenet121.nnef.tar`) before `cargo lambda build \
             --release` or `sam build`, or set EMBED_MODEL_PATH when building, or set MODEL_PATH \
             to a model shipped in a layer (under /opt)."
        );
        return ExitCode::FAILURE;
    };
    let app = match build(&settings, source) {
        Ok(app) => app,
        Err(code) => return code,
    };
    if settings.preload_model {
        app.preload();
    }
    match runtime().map(|rt| rt.block_on(lambda::run(http::router(app)))) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("densenet-lambda: the Lambda runtime stopped: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("densenet-lambda: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve_mode(settings: &Settings, addr: SocketAddr) -> ExitCode {
    lambda_http::tracing::init_default_subscriber_with_writer(std::io::stderr);
    let app = match build(settings, model_or_fetch(settings)) {
        Ok(app) => app,
        Err(code) => return code,
    };
    if settings.preload_model {
        app.preload();
    }
    let max_body_bytes = app.limits().max_body_bytes;
    let served =
        runtime().and_then(|rt| rt.block_on(serve::serve(http::router(app), addr, max_body_bytes)));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("densenet-lambda: cannot serve on {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The configured model, or, with none anywhere, torchvision's DenseNet-121 fetched into the
/// default file on the first load, as the tutorial downloads its weights on its first run.
fn model_or_fetch(settings: &Settings) -> ModelSource {
    settings.model_source().unwrap_or_else(|| ModelSource::Made {
        path: PathBuf::from(model::DEFAULT_NNEF_PATH),
        maker: MakeMissing {
            how: "fetched on first use",
            make: Arc::new(|path| {
                tracing::info!(to = %path.display(), "no model configured or found: fetching torchvision's DenseNet-121 weights");
                fetch::fetch_model(path, fetch::Progress::Log)
                    .map(drop)
                    .map_err(|e| {
                        format!("no model is configured and torchvision's DenseNet-121 could not be fetched: {e}")
                    })
            }),
        },
    })
}

fn convert_mode(input: &Path, output: &Path) -> ExitCode {
    report(model::convert_to_nnef(input, output), output)
}

fn fetch_model_mode(out: &Path, url: Option<&str>, sha256: Option<&str>) -> ExitCode {
    lambda_http::tracing::init_default_subscriber_with_writer(std::io::stderr);
    let fetched = fetch::WeightsSource::with_overrides(url, sha256).and_then(|source| {
        let cache = fetch::torch_hub_checkpoints_dir()?;
        fetch::fetch_model_with(&source, &cache, out, fetch::Progress::Auto)
    });
    report(fetched.map(drop), out)
}

/// Says what a model tool wrote, or why it wrote nothing.
fn report<E: std::fmt::Display>(result: Result<(), E>, out: &Path) -> ExitCode {
    match result {
        Ok(()) => {
            eprintln!("wrote {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("densenet-lambda: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints, for each file, exactly what `POST /predict` answers for it: each file is sent to
/// the API router as a raw image body.
fn classify_mode(settings: &Settings, topk: Option<u16>, files: &[PathBuf]) -> ExitCode {
    lambda_http::tracing::init_default_subscriber_with_writer(std::io::stderr);
    let app = match build(settings, model_or_fetch(settings)) {
        Ok(app) => app,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("densenet-lambda: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let router = http::router(app);
    let uri = match topk {
        Some(k) => format!("/predict?topk={k}"),
        None => "/predict".to_owned(),
    };
    let mut failed = false;
    for file in files {
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(e) => {
                failed = true;
                let error = format!("cannot read {}: {e}", file.display());
                println!("{}", serde_json::json!({ "error": error }));
                continue;
            }
        };
        let request = Request::post(uri.as_str())
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(Body::from(bytes))
            .expect("a POST with a static path is a valid request");
        let (status, body) = rt.block_on(async {
            let response = router
                .clone()
                .oneshot(request)
                .await
                .unwrap_or_else(|e| match e {});
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            (status, body)
        });
        failed |= !status.is_success();
        print!("{}", String::from_utf8_lossy(&body));
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
