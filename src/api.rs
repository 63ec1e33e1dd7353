//! The HTTP contract as plain functions: routes, replies, and the one place errors become
//! statuses. Both edges (the Lambda handler and `serve`) translate their request into an
//! [`ApiRequest`], call [`App::handle`], and translate the [`ApiReply`] back.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::classifier::{Classifier, ClassifyError, Prediction, Scored};
use crate::preprocess::ImageError;
use crate::upload::{self, UploadError, UploadLimits};

/// The tutorial's greeting on `GET /`.
pub const GREETING: &str = "Try POSTing to the /predict endpoint with an RGB image attachment";

/// A request as the contract sees it, whatever transport brought it.
#[derive(Debug, Clone, Default)]
pub struct ApiRequest {
    /// Upper-case HTTP method.
    pub method: String,
    /// Path without stage prefix or query, e.g. `/predict`.
    pub path: String,
    /// Raw query string without `?`, if any.
    pub query: Option<String>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The whole body (already base64-decoded by the edge).
    pub body: Bytes,
}

/// A reply: always JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiReply {
    /// HTTP status code.
    pub status: u16,
    /// Extra headers beyond `content-type: application/json` (e.g. `allow` on 405).
    pub headers: Vec<(&'static str, String)>,
    /// JSON text, formatted as Flask's `jsonify` formats it.
    pub body: String,
}

/// The content type of every reply.
pub const JSON: &str = "application/json";

/// Everything a request can get wrong, and our own failures. [`ApiError::status`] is the only
/// place a failure becomes a status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No such route.
    #[error("no route {0}; try GET / or POST /predict")]
    NotFound(String),
    /// The route exists, not with this method.
    #[error("method {method} is not allowed on {path}; use {allowed}")]
    MethodNotAllowed {
        method: String,
        path: String,
        allowed: &'static str,
    },
    /// The body did not yield an image.
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// A query parameter is invalid.
    #[error("{0}")]
    BadQuery(String),
    /// The image or the model failed.
    #[error(transparent)]
    Classify(#[from] ClassifyError),
    /// A bug or a crashed worker: never the client's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of each failure.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::Upload(UploadError::ContentType(_)) => 415,
            ApiError::Upload(UploadError::TooLarge(_)) => 413,
            ApiError::Upload(_) | ApiError::BadQuery(_) => 400,
            ApiError::Classify(ClassifyError::Image(ImageError::TooLarge { .. })) => 413,
            ApiError::Classify(ClassifyError::Image(_)) => 415,
            ApiError::Classify(ClassifyError::Model(_)) | ApiError::Internal(_) => 500,
        }
    }

    /// The JSON reply for this failure.
    pub fn into_reply(self) -> ApiReply {
        let mut reply = json_reply(
            self.status(),
            &ErrorBody {
                error: self.to_string(),
            },
        );
        if let ApiError::MethodNotAllowed { allowed, .. } = self {
            reply.headers.push(("allow", allowed.to_owned()));
        }
        reply
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

#[derive(Serialize)]
struct Greeting {
    msg: &'static str,
}

/// `POST /predict`'s reply. Field order is alphabetical, as Flask's `jsonify` sorts keys.
#[derive(Serialize)]
struct PredictReply<'a> {
    class_id: usize,
    class_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    topk: Option<Vec<TopK<'a>>>,
}

#[derive(Serialize)]
struct TopK<'a> {
    class_id: usize,
    class_name: &'a str,
    probability: f32,
}

/// The service: shared, immutable state behind both edges.
#[derive(Debug, Clone)]
pub struct App {
    classifier: Arc<Classifier>,
    limits: UploadLimits,
}

impl App {
    /// Wraps a classifier with the request limits.
    pub fn new(classifier: Arc<Classifier>, limits: UploadLimits) -> App {
        App { classifier, limits }
    }

    /// The request limits in force (the edges enforce the body size before buffering).
    pub fn limits(&self) -> UploadLimits {
        self.limits
    }

    /// Answers one request. Never fails: every error is a JSON reply with its status.
    pub async fn handle(&self, request: ApiRequest) -> ApiReply {
        self.route(request).await.unwrap_or_else(|e| {
            if e.status() >= 500 {
                tracing::error!(error = %e, "request failed");
            } else {
                tracing::info!(status = e.status(), error = %e, "request refused");
            }
            e.into_reply()
        })
    }

    async fn route(&self, request: ApiRequest) -> Result<ApiReply, ApiError> {
        let method = request.method.as_str();
        match request.path.as_str() {
            "/" => match method {
                "GET" | "HEAD" => Ok(json_reply(200, &Greeting { msg: GREETING })),
                _ => Err(not_allowed(&request, "GET")),
            },
            "/predict" => match method {
                "POST" => self.predict(request).await,
                _ => Err(not_allowed(&request, "POST")),
            },
            other => Err(ApiError::NotFound(other.to_owned())),
        }
    }

    async fn predict(&self, request: ApiRequest) -> Result<ApiReply, ApiError> {
        let topk = parse_topk(request.query.as_deref())?;
        let images =
            upload::images(request.content_type.as_deref(), request.body, self.limits).await?;
        let Some(image) = images.into_iter().next() else {
            return Err(UploadError::MissingFile.into());
        };
        let classifier = Arc::clone(&self.classifier);
        let size = image.len();
        let prediction = tokio::task::spawn_blocking(move || classifier.classify(&image))
            .await
            .map_err(|e| ApiError::Internal(format!("the classification task failed: {e}")))??;
        log_prediction(&prediction, size);
        let scored = topk.map(|k| self.classifier.top_k(&prediction, k));
        Ok(json_reply(
            200,
            &prediction_reply(&prediction, scored.as_deref()),
        ))
    }
}

/// One log line per prediction: what came in and where the time went.
fn log_prediction(p: &Prediction, bytes: usize) {
    let ms = |d: std::time::Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    tracing::info!(
        bytes,
        width = p.source_size.0,
        height = p.source_size.1,
        decode_ms = ms(p.timings.decode),
        preprocess_ms = ms(p.timings.preprocess),
        model_load_ms = ms(p.timings.model_load),
        inference_ms = ms(p.timings.inference),
        class_id = p.class_id,
        class_name = %p.class_name,
        "prediction"
    );
}

fn prediction_reply<'a>(p: &'a Prediction, scored: Option<&'a [Scored]>) -> PredictReply<'a> {
    PredictReply {
        class_id: p.class_id,
        class_name: &p.class_name,
        topk: scored.map(|s| {
            s.iter()
                .map(|s| TopK {
                    class_id: s.class_id,
                    class_name: &s.class_name,
                    probability: s.probability,
                })
                .collect()
        }),
    }
}

/// The JSON line `POST /predict` answers for a prediction; the CLI prints the same.
pub fn prediction_json(p: &Prediction, scored: Option<&[Scored]>) -> String {
    to_json(&prediction_reply(p, scored))
}

fn not_allowed(request: &ApiRequest, allowed: &'static str) -> ApiError {
    ApiError::MethodNotAllowed {
        method: request.method.clone(),
        path: request.path.clone(),
        allowed,
    }
}

/// Reads `topk` from the query: absent → none; 1..=1000 → k; anything else is a 400.
pub fn parse_topk(query: Option<&str>) -> Result<Option<usize>, ApiError> {
    let Some(query) = query else { return Ok(None) };
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "topk" {
            return match value.parse::<usize>() {
                Ok(k) if (1..=1000).contains(&k) => Ok(Some(k)),
                _ => Err(ApiError::BadQuery(format!(
                    "topk must be an integer from 1 to 1000, got {value:?}"
                ))),
            };
        }
    }
    Ok(None)
}

/// Serialises like Flask's `jsonify`: compact, keys in order, one trailing newline.
fn to_json<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string(value).expect("reply types always serialise");
    text.push('\n');
    text
}

fn json_reply<T: Serialize>(status: u16, value: &T) -> ApiReply {
    ApiReply {
        status,
        headers: Vec::new(),
        body: to_json(value),
    }
}
