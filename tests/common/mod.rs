//! Paths to the shared models, samples and reference outputs, and small readers for them.
#![allow(dead_code)]

pub mod emulator;
pub mod file_server;

use std::path::PathBuf;
use std::sync::Arc;

use densenet_lambda::classifier::Classifier;
use densenet_lambda::http::upload::UploadLimits;
use densenet_lambda::http::App;
use densenet_lambda::labels::Labels;
use densenet_lambda::model::{LazyModel, ModelOptions, ModelSource};
use densenet_lambda::preprocess::DecodeOptions;

/// The folder with model/, samples/ and reference/: `SHARED_DIR`, else `../shared` beside the repo.
pub fn shared() -> PathBuf {
    let dir = std::env::var_os("SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    assert!(
        dir.join("samples").is_dir(),
        "no samples in {}: set SHARED_DIR",
        dir.display()
    );
    dir
}

pub fn sample(name: &str) -> PathBuf {
    shared().join("samples").join(name)
}

pub fn sample_bytes(name: &str) -> Vec<u8> {
    std::fs::read(sample(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

/// The real-weights stand-in (answers mean something).
pub fn efficientnet() -> PathBuf {
    shared().join("model/efficientnet_lite0.onnx")
}

/// DenseNet-121's exact graph with untrained weights (coverage and timing only).
pub fn densenet() -> PathBuf {
    shared().join("model/densenet121_untrained_seed0.onnx")
}

/// The five samples with a reference, and their expected efficientnet top-1.
pub const SAMPLES: [(&str, usize); 5] = [
    ("kitten.jpg", 282),
    ("serve_Cat.jpg", 281),
    ("imagenet_n04254680_soccer_ball.JPEG", 805),
    ("skimage_chelsea.png", 282),
    ("tutorial_cat_pic.jpeg", 281),
];

/// Reads a float32 little-endian `.npy` file (v1 header), returning its values.
pub fn read_npy_f32(name: &str) -> Vec<f32> {
    let bytes =
        std::fs::read(shared().join("reference").join(format!("{name}.input.npy"))).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(
        header.contains("'<f4'") && header.contains("(1, 3, 224, 224)"),
        "{header}"
    );
    bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// reference.json's entry for a sample.
pub fn reference(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(shared().join("reference/reference.json")).unwrap();
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    all["images"][format!("samples/{name}")].clone()
}

/// The largest absolute difference between two equally long vectors (tensors, logits).
pub fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Reference logits of one model for one sample.
pub fn reference_logits(name: &str, model: &str) -> Vec<f32> {
    reference(name)[model]["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

/// A service like the binary builds, on a given model file, with default limits.
pub fn app_with_model(path: PathBuf) -> App {
    let model = LazyModel::new(ModelSource::File(path), ModelOptions::threads(1));
    let classifier = Classifier::new(model, Labels::imagenet(), DecodeOptions::default());
    App::new(Arc::new(classifier), UploadLimits::default()).unwrap()
}

/// The API router of an app, as both edges run it.
pub fn router(app: App) -> axum::Router {
    densenet_lambda::http::router(app)
}

/// A reply as the tests look at it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    /// A header's value, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// Sends one request through the router in-process (`tower::ServiceExt::oneshot`).
pub async fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut request = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(axum::body::Body::from(body)).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// Sends one Lambda event through the service `lambda_http::run` runs, and converts the reply
/// as the runtime does; the body must come back as text (JSON).
pub async fn call_lambda(router: &axum::Router, event: lambda_http::Request) -> Reply {
    use lambda_http::IntoResponse;
    use tower::ServiceExt;
    let response = densenet_lambda::lambda::service(router.clone())
        .oneshot(event)
        .await
        .unwrap()
        .into_response()
        .await;
    let (parts, body) = response.into_parts();
    let body = match body {
        lambda_http::Body::Text(text) => text,
        other => panic!("the Lambda reply body is not text: {other:?}"),
    };
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// Builds a multipart/form-data body with the given (field name, file name, bytes) parts.
pub fn multipart(boundary: &str, parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, filename, data) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// What the file name promises: (status, exact body if it is fixed).
pub fn event_expectation(name: &str) -> (u16, Option<&'static str>) {
    if name.starts_with("predict-") {
        (
            200,
            Some("{\"class_id\":282,\"class_name\":\"tiger_cat\"}\n"),
        )
    } else if name.starts_with("get-root-") {
        (
            200,
            Some(
                "{\"msg\":\"Try POSTing to the /predict endpoint with an RGB image attachment\"}\n",
            ),
        )
    } else if let Some(rest) = name.strip_prefix("bad-") {
        let status: u16 = rest[..3].parse().expect("bad-<status>-… event names");
        assert!((400..500).contains(&status), "{name}");
        (status, None)
    } else {
        panic!("event {name} does not say what it expects (predict-, get-root- or bad-<status>-)")
    }
}

/// A `densenet-lambda serve` process on a free loopback port, killed when dropped.
pub struct Serve {
    pub child: std::process::Child,
    pub base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` with `MODEL_PATH=model` and extra environment, and waits until `GET /` answers.
pub fn serve(model: &std::path::Path, env: &[(&str, &str)]) -> Serve {
    serve_with(|command| {
        command
            .env("MODEL_PATH", model)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null());
    })
}

/// Starts `serve --port N` on a free port, configured by `configure` (environment, working
/// directory, stdout; stderr is discarded), and waits until `GET /` answers.
pub fn serve_with(configure: impl FnOnce(&mut std::process::Command)) -> Serve {
    use std::time::{Duration, Instant};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_densenet-lambda"));
    command
        .args(["serve", "--port", &port.to_string()])
        .stderr(std::process::Stdio::null());
    configure(&mut command);
    let server = Serve {
        child: command.spawn().unwrap(),
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::blocking::get(&server.base).is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}
