//! `densenet-lambda`: picks the mode (Lambda function, `serve`, `classify`) and nothing else.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use bytes::Bytes;
use densenet_lambda::api::{ApiRequest, App};
use densenet_lambda::config::Config;
use densenet_lambda::{lambda, serve};

const USAGE: &str = "\
densenet-lambda: ImageNet classification (the PyTorch Flask tutorial's API) as an AWS Lambda function

USAGE:
    densenet-lambda                          run as the Lambda function (inside Lambda, or under
                                             `cargo lambda watch`, which sets AWS_LAMBDA_RUNTIME_API)
    densenet-lambda serve [--port N]         answer GET / and POST /predict on 127.0.0.1
                                             (port: --port, else $PORT, else 5000)
    densenet-lambda classify [--topk K] FILE...
                                             print what POST /predict answers for each file, one
                                             JSON object per line

    densenet-lambda convert IN.onnx OUT.nnef.tar
                                             pre-process an ONNX model into tract's NNEF format,
                                             which loads faster (a shorter cold start); use it
                                             anywhere an .onnx file goes (MODEL_PATH, EMBED_MODEL_PATH)

ENVIRONMENT:
    MODEL_PATH           ONNX classifier, input [1,3,224,224] f32 (default: the embedded model if
                         built with --features embed-model, else model/densenet121.onnx)
    LABELS_PATH          labels in the tutorial's index_to_name.json shape (default: built-in ImageNet)
    MODEL_THREADS        inference threads (default: available CPUs); requests run CPUs ÷ this at once
    PRELOAD_MODEL        0 loads the model on the first /predict instead of in the background at start
    MAX_BODY_BYTES       largest request body (default 6291456)
    MAX_PARTS            most multipart parts (default 16)
    MAX_IMAGE_DIMENSION  largest image width or height (default 16384)
    MAX_DECODE_BYTES     most memory one decode may allocate (default 536870912)
    JPEG_DCT_SCALING     0 decodes large JPEGs at full size before resizing (default: DCT-scaled)
    CORS_ALLOW_ORIGINS   browser origins allowed to call the API: `*` or a comma list (default: off)
    UI_ENABLED           1 serves an upload page at GET /ui (default: off)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, rest) = args
        .split_first()
        .map_or(("", &[][..]), |(m, r)| (m.as_str(), r));
    match mode {
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        "serve" => with_app(|app, preload| serve_mode(app, preload, rest)),
        "classify" => with_app(|app, _| classify_mode(app, rest)),
        "convert" => convert_mode(rest),
        "" if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() => with_app(lambda_mode),
        "" => {
            eprint!(
                "AWS_LAMBDA_RUNTIME_API is not set, so this is not running inside Lambda.\n\
                 To try the function locally, run `densenet-lambda serve` and POST an image to\n\
                 http://127.0.0.1:5000/predict, or run it under `cargo lambda watch`.\n\n{USAGE}"
            );
            ExitCode::from(2)
        }
        other => {
            eprint!("unknown command {other:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Reads the configuration and builds the service, or explains what is wrong with the settings.
/// The mode also gets `PRELOAD_MODEL`: servers start the model load once their logging is up
/// (the CLI classifies at once, so a preload gains it nothing).
fn with_app(mode: impl FnOnce(App, bool) -> ExitCode) -> ExitCode {
    let built = Config::from_env().and_then(|config| Ok((config.build()?, config.preload_model)));
    match built {
        Ok((app, preload)) => mode(app, preload),
        Err(e) => {
            eprintln!("densenet-lambda: {e}");
            ExitCode::from(2)
        }
    }
}

/// The async runtime for I/O, on one thread: classification runs on `App`'s own worker threads,
/// and a second I/O thread measured no faster while it competed with inference for the CPUs.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
}

fn lambda_mode(app: App, preload: bool) -> ExitCode {
    lambda_http::tracing::init_default_subscriber();
    if preload {
        app.preload();
    }
    match runtime().map(|rt| rt.block_on(lambda::run(app))) {
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

fn serve_mode(app: App, preload: bool, args: &[String]) -> ExitCode {
    lambda_http::tracing::init_default_subscriber_with_writer(std::io::stderr);
    let port = match args {
        [] => std::env::var("PORT").ok(),
        [flag, value] if flag == "--port" => Some(value.clone()),
        _ => {
            eprint!("serve takes only --port N\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let port = match port.as_deref().map(str::parse::<u16>) {
        None => 5000,
        Some(Ok(port)) => port,
        Some(Err(_)) => {
            eprintln!("densenet-lambda: the port must be a number from 0 to 65535, got {port:?}");
            return ExitCode::from(2);
        }
    };
    if preload {
        app.preload();
    }
    match runtime().and_then(|rt| rt.block_on(serve::serve(app, port))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("densenet-lambda: cannot serve on 127.0.0.1:{port}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn convert_mode(args: &[String]) -> ExitCode {
    let [onnx, nnef] = args else {
        eprint!("convert takes an input .onnx and an output .nnef.tar\n\n{USAGE}");
        return ExitCode::from(2);
    };
    match densenet_lambda::model::convert_to_nnef(onnx.as_ref(), nnef.as_ref()) {
        Ok(()) => {
            eprintln!("wrote {nnef}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("densenet-lambda: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints, for each file, exactly what `POST /predict` answers for it (same code path).
fn classify_mode(app: App, args: &[String]) -> ExitCode {
    lambda_http::tracing::init_default_subscriber_with_writer(std::io::stderr);
    let (query, files) = match args {
        [flag, k, files @ ..] if flag == "--topk" => (Some(format!("topk={k}")), files),
        files => (None, files),
    };
    if files.is_empty() {
        eprint!("classify needs at least one image file\n\n{USAGE}");
        return ExitCode::from(2);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("densenet-lambda: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    for file in files {
        let body = match std::fs::read(file) {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) => {
                failed = true;
                let error = serde_json::json!({ "error": format!("cannot read {file}: {e}") });
                println!("{error}");
                continue;
            }
        };
        let request = ApiRequest {
            method: "POST".into(),
            path: "/predict".into(),
            query: query.clone(),
            content_type: Some("application/octet-stream".into()),
            body,
            origin: None,
        };
        let reply = rt.block_on(app.handle(request));
        failed |= reply.status != 200;
        print!("{}", reply.body);
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
