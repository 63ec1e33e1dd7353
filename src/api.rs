//! The HTTP contract as plain functions: routes, replies, and the one place errors become
//! statuses. Both edges (the Lambda handler and `serve`) translate their request into an
//! [`ApiRequest`], call [`App::handle`], and translate the [`ApiReply`] back.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::classifier::{Classifier, ClassifyError, Prediction, Scored};
use crate::cors::Cors;
use crate::model_info::{self, ChecksumCache};
use crate::preprocess::ImageError;
use crate::upload::{self, UploadError, UploadLimits};
use crate::workers::Workers;

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
    /// The `Origin` header, for CORS.
    pub origin: Option<String>,
}

/// A reply: JSON but for the opt-in upload page.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiReply {
    /// HTTP status code.
    pub status: u16,
    /// The `content-type` header ([`JSON`] for every API reply).
    pub content_type: &'static str,
    /// Extra headers (e.g. `allow` on 405, CORS).
    pub headers: Vec<(&'static str, String)>,
    /// The body: JSON text formatted as Flask's `jsonify` formats it, or the upload page.
    pub body: String,
}

/// The content type of every reply.
pub const JSON: &str = "application/json";

/// Everything a request can get wrong, and our own failures. [`ApiError::status`] is the only
/// place a failure becomes a status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No such route.
    #[error("no route {0}; try GET / or POST /predict (GET /openapi.json lists every route)")]
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
    /// One of several uploaded images failed.
    #[error("file {} of the upload: {error}", index + 1)]
    InFile { index: usize, error: ClassifyError },
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
            ApiError::Classify(error) | ApiError::InFile { error, .. } => match error {
                ClassifyError::Image(ImageError::TooLarge { .. }) => 413,
                ClassifyError::Image(_) => 415,
                ClassifyError::Model(_) => 500,
            },
            ApiError::Internal(_) => 500,
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
struct Health {
    status: &'static str,
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

/// Opt-in additions beyond the tutorial; all off by default.
#[derive(Debug, Clone, Default)]
pub struct Features {
    /// Cross-origin access for browser clients (`CORS_ALLOW_ORIGINS`).
    pub cors: Cors,
    /// The upload page at `GET /ui` (`UI_ENABLED=1`).
    pub ui: bool,
}

/// The service: shared, immutable state behind both edges.
#[derive(Debug, Clone)]
pub struct App {
    classifier: Arc<Classifier>,
    limits: UploadLimits,
    features: Features,
    checksums: Arc<ChecksumCache>,
    /// The threads that decode and infer (CPUs ÷ model threads); requests beyond them wait.
    workers: Arc<Workers>,
}

/// The OpenAPI 3 document of every route and status, served at `GET /openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The upload page served at `GET /ui` when enabled.
const UI_PAGE: &str = include_str!("ui.html");

impl App {
    /// Wraps a classifier with the request limits and starts its classification threads: as
    /// many as the CPUs hold at the model's thread count (at least one); no opt-in features.
    pub fn new(classifier: Arc<Classifier>, limits: UploadLimits) -> std::io::Result<App> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = (cpus / classifier.model().options().threads.max(1)).max(1);
        Ok(App {
            classifier,
            limits,
            features: Features::default(),
            checksums: Arc::default(),
            workers: Arc::new(Workers::new(workers)?),
        })
    }

    /// Starts loading the model on a classification thread and returns at once, so the first
    /// `/predict` finds it loaded or loading while `GET /` never waits. A failed load is logged
    /// and retried by the next `/predict`, as without a preload.
    pub fn preload(&self) {
        let classifier = Arc::clone(&self.classifier);
        let queued = self.workers.submit(move || {
            let _ = classifier.model().get();
        });
        if let Err(e) = queued {
            tracing::warn!(error = %e, "model preload not started");
        }
    }

    /// Turns on opt-in features.
    pub fn with_features(mut self, features: Features) -> App {
        self.features = features;
        self
    }

    /// The request limits in force (the edges enforce the body size before buffering).
    pub fn limits(&self) -> UploadLimits {
        self.limits
    }

    /// Answers one request. Never fails: every error is a JSON reply with its status.
    pub async fn handle(&self, request: ApiRequest) -> ApiReply {
        let origin = request.origin.clone();
        let mut reply = self.route(request).await.unwrap_or_else(|e| {
            if e.status() >= 500 {
                tracing::error!(error = %e, "request failed");
            } else {
                tracing::info!(status = e.status(), error = %e, "request refused");
            }
            e.into_reply()
        });
        reply
            .headers
            .extend(self.features.cors.headers(origin.as_deref()));
        reply
    }

    async fn route(&self, request: ApiRequest) -> Result<ApiReply, ApiError> {
        let method = request.method.as_str();
        let get = |reply: fn(&App) -> ApiReply| match method {
            "GET" | "HEAD" => Ok(reply(self)),
            _ => Err(not_allowed(&request, "GET")),
        };
        match request.path.as_str() {
            "/" => get(|_| json_reply(200, &Greeting { msg: GREETING })),
            "/predict" => match method {
                "POST" => self.predict(request).await,
                "OPTIONS" if self.features.cors.enabled() => {
                    let mut reply = ApiReply::new(204, JSON, String::new());
                    reply
                        .headers
                        .extend(self.features.cors.preflight_headers("POST"));
                    Ok(reply)
                }
                _ => Err(not_allowed(&request, "POST")),
            },
            "/health" => get(|_| json_reply(200, &Health { status: "ok" })),
            "/model" => get(|app| {
                json_reply(
                    200,
                    &model_info::describe(app.classifier.model(), &app.checksums),
                )
            }),
            "/openapi.json" => get(|_| ApiReply::new(200, JSON, OPENAPI.to_owned())),
            "/ui" if self.features.ui => {
                get(|_| ApiReply::new(200, "text/html; charset=utf-8", UI_PAGE.to_owned()))
            }
            other => Err(ApiError::NotFound(other.to_owned())),
        }
    }

    /// `POST /predict`: one image → one reply object (the tutorial's); several `file` parts →
    /// an array of replies in upload order.
    async fn predict(&self, request: ApiRequest) -> Result<ApiReply, ApiError> {
        let topk = parse_topk(request.query.as_deref())?;
        let images =
            upload::images(request.content_type.as_deref(), request.body, self.limits).await?;
        let several = images.len() > 1;
        let classifier = Arc::clone(&self.classifier);
        let predictions = self
            .workers
            .run(move || {
                images
                    .iter()
                    .enumerate()
                    .map(|(i, image)| {
                        let prediction = classifier.classify(image).map_err(|e| (i, e))?;
                        log_prediction(&prediction, image.len());
                        Ok(prediction)
                    })
                    .collect::<Result<Vec<_>, (usize, ClassifyError)>>()
            })
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|(index, error)| {
                if several {
                    ApiError::InFile { index, error }
                } else {
                    error.into()
                }
            })?;
        let scored: Vec<Option<Vec<Scored>>> = predictions
            .iter()
            .map(|p| topk.map(|k| self.classifier.top_k(p, k)))
            .collect();
        let replies: Vec<PredictReply> = predictions
            .iter()
            .zip(&scored)
            .map(|(p, s)| prediction_reply(p, s.as_deref()))
            .collect();
        Ok(if several {
            json_reply(200, &replies)
        } else {
            json_reply(200, &replies[0])
        })
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
    ApiReply::new(status, JSON, to_json(value))
}

impl ApiReply {
    /// A reply without extra headers.
    pub fn new(status: u16, content_type: &'static str, body: String) -> ApiReply {
        ApiReply {
            status,
            content_type,
            headers: Vec::new(),
            body,
        }
    }
}
