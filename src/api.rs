//! The HTTP contract as one axum [`Router`]: routes, handlers, and the one place errors become
//! statuses ([`ApiError`]). Both edges run this router: `lambda_http::run` under Lambda
//! ([`crate::lambda`]) and `axum::serve` locally ([`crate::serve`]); the CLI's `classify` sends it
//! requests too. The OpenAPI document is generated from the same routes and handlers (utoipa),
//! so it describes exactly what the running configuration serves.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header::{HeaderValue, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Router};
use serde::{Deserialize, Serialize};
use utoipa::openapi::OpenApi as OpenApiDocument;
use utoipa::{OpenApi, PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::classifier::{Classifier, ClassifyError, Prediction, Scored};
use crate::metrics::Metrics;
use crate::model_info::{self, ChecksumCache, ModelInfo};
use crate::preprocess::ImageError;
use crate::upload::{self, BodyKind, UploadError, UploadLimits};
use crate::workers::Workers;

/// The tutorial's greeting on `GET /`.
pub const GREETING: &str = "Try POSTing to the /predict endpoint with an RGB image attachment";

/// The content type of every API reply (Flask's `jsonify` sends the same).
pub const JSON: &str = "application/json";

/// Opt-in additions beyond the tutorial; all off by default.
#[derive(Debug, Clone, Default)]
pub struct Features {
    /// Browser origins allowed to call the API (`CORS_ALLOW_ORIGINS`): empty is off, `*` any.
    pub cors_origins: Vec<String>,
    /// The upload page at `GET /ui` (`UI_ENABLED=1`).
    pub ui: bool,
    /// The API documentation page at `GET /docs` (`DOCS_ENABLED=1`).
    pub docs: bool,
}

impl Features {
    /// Whether cross-origin access is on (then the CORS layer answers preflights on every path).
    pub fn cors(&self) -> bool {
        !self.cors_origins.is_empty()
    }
}

/// The service: shared, immutable state behind every route.
#[derive(Debug, Clone)]
pub struct App {
    classifier: Arc<Classifier>,
    limits: UploadLimits,
    features: Features,
    timeout: Duration,
    checksums: Arc<ChecksumCache>,
    /// The threads that decode and infer (CPUs ÷ model threads); requests beyond them wait.
    workers: Arc<Workers>,
    /// CloudWatch metrics (EMF records), off unless asked for.
    metrics: Arc<Metrics>,
}

/// How long a request may take before it is answered with a 503 (`REQUEST_TIMEOUT_SECS`):
/// under API Gateway's 29-second integration limit, so the client gets our JSON, not a gateway
/// error page.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(25);

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
            timeout: DEFAULT_TIMEOUT,
            checksums: Arc::default(),
            workers: Arc::new(Workers::new(workers)?),
            metrics: Arc::new(Metrics::off()),
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

    /// Writes an EMF record per prediction (CloudWatch metrics).
    pub fn with_metrics(mut self, metrics: Metrics) -> App {
        self.metrics = Arc::new(metrics);
        self
    }

    /// Sets how long a request may take before it is answered with a 503.
    pub fn with_timeout(mut self, timeout: Duration) -> App {
        self.timeout = timeout;
        self
    }

    /// The request limits in force.
    pub fn limits(&self) -> UploadLimits {
        self.limits
    }

    /// The opt-in features in force.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// The request timeout in force.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// Everything a request can get wrong, and our own failures. [`ApiError::status`] is the only
/// place a failure becomes a status code, and [`IntoResponse`] the only place it becomes a reply.
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
        allowed: String,
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
    /// The request took longer than the timeout.
    #[error("the request took longer than {0:?}; try again, or send a smaller image")]
    Timeout(Duration),
    /// A bug or a crashed worker: never the client's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of each failure.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Upload(UploadError::ContentType(_)) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Upload(UploadError::TooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Upload(_) | ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::Classify(error) | ApiError::InFile { error, .. } => match error {
                ClassifyError::Image(ImageError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
                ClassifyError::Image(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ClassifyError::Model(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), error = %self, "request refused");
        }
        let mut response = FlaskJson(ErrorBody {
            error: self.to_string(),
        })
        .into_response();
        *response.status_mut() = status;
        if let ApiError::MethodNotAllowed { allowed, .. } = &self {
            if let Ok(value) = HeaderValue::from_str(allowed) {
                response
                    .headers_mut()
                    .insert(axum::http::header::ALLOW, value);
            }
        }
        response
    }
}

/// A JSON reply serialised as Flask's `jsonify` does: compact, keys in declaration order (the
/// reply types declare them alphabetically, as `jsonify` sorts them), one trailing newline.
pub struct FlaskJson<T>(pub T);

impl<T: Serialize> IntoResponse for FlaskJson<T> {
    fn into_response(self) -> Response {
        let mut text = serde_json::to_vec(&self.0).expect("reply types always serialise");
        text.push(b'\n');
        ([(CONTENT_TYPE, JSON)], text).into_response()
    }
}

/// Every error reply: what went wrong and what to send instead.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"error": "no \"file\" field in the form; send the image in a field named \"file\" (curl -F file=@image.jpg)"}))]
pub struct ErrorBody {
    /// What went wrong and what to do instead.
    pub error: String,
}

/// `GET /`'s reply, the tutorial's.
#[derive(Debug, Serialize, ToSchema)]
pub struct Greeting {
    /// Always the tutorial's text.
    #[schema(example = "Try POSTing to the /predict endpoint with an RGB image attachment")]
    pub msg: &'static str,
}

/// `GET /health`'s reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the process answers.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// `POST /predict`'s reply for one image. Field order is alphabetical, as Flask's `jsonify`
/// sorts keys; without `?topk` it is exactly the tutorial's `{"class_id":…,"class_name":…}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"class_id": 285, "class_name": "Egyptian_cat"}))]
pub struct PredictReply {
    /// ImageNet class index of the most probable class.
    pub class_id: usize,
    /// Its label, from the tutorial's index_to_name.json.
    pub class_name: String,
    /// With `?topk=k`: the k most probable classes, most probable first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topk: Option<Vec<TopK>>,
}

/// One of the k most probable classes.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopK {
    /// ImageNet class index.
    pub class_id: usize,
    /// Its label.
    pub class_name: String,
    /// Softmax probability over all classes.
    pub probability: f32,
}

/// What `POST /predict` answers: one object for one image, an array for several `file` parts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum PredictResponse {
    /// One image (the tutorial's case).
    One(PredictReply),
    /// Several `file` parts, in upload order.
    Several(Vec<PredictReply>),
}

/// An uploaded image as the schema describes it: non-empty bytes (an empty upload is a 400).
fn image_bytes(description: &str) -> utoipa::openapi::schema::ObjectBuilder {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
        .min_length(Some(1))
        .description(Some(description))
}

/// The multipart form the tutorial sends (`curl -F file=@kitten.jpg`). Its schema is written by
/// hand because it says what derive cannot: other fields are allowed (and ignored), with names
/// that can travel in a part header.
struct UploadForm;

impl utoipa::PartialSchema for UploadForm {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
        let header_safe_name = ObjectBuilder::new()
            .schema_type(Type::String)
            // Control characters other than tab, CR and LF (which form encoders escape) cannot
            // travel in a part's Content-Disposition header.
            .pattern(Some(
                "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F]*$",
            ));
        ObjectBuilder::new()
            .description(Some("The tutorial's form; fields other than `file` are ignored."))
            .property("file", image_bytes("The image (JPEG, PNG, GIF, WebP, BMP or TIFF, recognised from its content); repeat the field to classify several images."))
            .required("file")
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(true)))
            .property_names(Some(header_safe_name))
            .into()
    }
}

impl ToSchema for UploadForm {}

/// The raw image as the whole body.
struct ImageBody;

impl utoipa::PartialSchema for ImageBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        image_bytes(
            "The image itself (JPEG, PNG, GIF, WebP, BMP or TIFF, recognised from its content).",
        )
        .into()
    }
}

impl ToSchema for ImageBody {}

/// `POST /predict`'s query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PredictQuery {
    /// Also return the k most probable classes with softmax probabilities.
    #[param(minimum = 1, maximum = 1000)]
    topk: Option<u16>,
}

/// The top-level description of the document; the paths come from the routes.
#[derive(OpenApi)]
#[openapi(info(
    title = "densenet-lambda",
    description = "The PyTorch Flask tutorial's image classifier (DenseNet-121, ImageNet) as a Rust AWS Lambda function. The default replies of GET / and POST /predict are byte-identical to the tutorial's. Any path not listed here answers 404, and a listed path with another method 405 with an Allow header, both with an Error body."
))]
struct ApiInfo;

/// Builds the router of the running configuration: the tutorial's routes, the opt-in ones that
/// are on, the OpenAPI document of exactly those, and the HTTP layers (CORS, body limit,
/// timeout, request ids and tracing; see [`crate::layers`]).
pub fn router(app: App) -> Router {
    let (routes, document) = routes(&app.features).split_for_parts();
    let document = describe_layers(document, &app.features);
    let document = Arc::new(
        document
            .to_pretty_json()
            .expect("the OpenAPI document always serialises")
            + "\n",
    );
    let mut routes = routes.layer(Extension(OpenApiJson(document)));
    if app.features.docs {
        routes = routes.merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs")
                .config(utoipa_swagger_ui::Config::from("/openapi.json")),
        );
    }
    let routes = routes.fallback(not_found).with_state(app.clone());
    crate::layers::apply(routes, &app)
}

/// The OpenAPI document the running configuration serves at `GET /openapi.json`.
pub fn openapi(features: &Features) -> OpenApiDocument {
    describe_layers(routes(features).into_openapi(), features)
}

/// The documented routes of a configuration; opt-in ones only when on.
fn routes(features: &Features) -> OpenApiRouter<App> {
    let mut router = OpenApiRouter::with_openapi(ApiInfo::openapi())
        .routes(routes!(greeting))
        .routes(routes!(predict))
        .routes(routes!(health))
        .routes(routes!(model))
        .routes(routes!(openapi_json));
    if features.ui {
        router = router.routes(routes!(ui_page));
    }
    if features.docs {
        // Swagger UI's own routes are added by `router`; these entries describe them.
        router = router.merge(OpenApiRouter::with_openapi(DocsPages::openapi()));
    }
    router
}

/// Adds what the layers answer on every path to the routes' document: with CORS on, the CORS
/// layer answers `OPTIONS` (a browser's preflight) on every path before routing.
fn describe_layers(mut document: OpenApiDocument, features: &Features) -> OpenApiDocument {
    use utoipa::openapi::path::OperationBuilder;
    use utoipa::openapi::{HeaderBuilder, ResponseBuilder};
    if features.cors() {
        let header = |description: &str| {
            HeaderBuilder::new()
                .schema(String::schema())
                .description(Some(description))
                .build()
        };
        let preflight = OperationBuilder::new()
            .tag("cors")
            .summary(Some("CORS preflight"))
            .description(Some("Browsers ask before a cross-origin request; the answer names the allowed origin, methods and headers (CORS_ALLOW_ORIGINS)."))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("What a cross-origin request may do")
                    .header("access-control-allow-origin", header("The allowed origin, when the request's Origin is allowed"))
                    .header("access-control-allow-methods", header("GET, POST, OPTIONS"))
                    .header("access-control-allow-headers", header("content-type")),
            )
            .build();
        for item in document.paths.paths.values_mut() {
            item.options = Some(preflight.clone());
        }
    }
    document
}

/// The tutorial's greeting.
#[utoipa::path(get, path = "/", tag = "tutorial",
    responses((status = 200, description = "The tutorial's greeting", body = Greeting)))]
async fn greeting() -> FlaskJson<Greeting> {
    FlaskJson(Greeting { msg: GREETING })
}

/// Classify an image.
///
/// Send the image as multipart/form-data in field `file` (the tutorial's way; several `file`
/// parts give an array of replies in upload order), or as the raw body with Content-Type
/// image/* or application/octet-stream. The format is recognised from the content (JPEG, PNG,
/// GIF, WebP, BMP, TIFF), never from the declared type or file name.
#[utoipa::path(post, path = "/predict", tag = "tutorial",
    params(PredictQuery),
    request_body(
        description = "The image to classify",
        content(
            (UploadForm = "multipart/form-data"),
            (ImageBody = "image/*"),
            (ImageBody = "application/octet-stream"),
        ),
    ),
    responses(
        (status = 200, description = "The most probable class (and with ?topk the k most probable); an array for several files", body = PredictResponse),
        (status = 400, description = "Malformed multipart body, no or empty `file` field, too many parts, or a bad `topk`", body = ErrorBody),
        (status = 413, description = "The body is larger than MAX_BODY_BYTES, or the image's dimensions or decoded size exceed the decode limits", body = ErrorBody),
        (status = 415, description = "A Content-Type other than multipart/form-data, image/* or application/octet-stream; or a body (or `file` part) that matches the schema but is not a decodable JPEG, PNG, GIF, WebP, BMP or TIFF image", body = ErrorBody),
        (status = 500, description = "The model could not be loaded or run (the message names the file and the fix)", body = ErrorBody),
        (status = 503, description = "The request took longer than REQUEST_TIMEOUT_SECS", body = ErrorBody),
    ))]
async fn predict(
    State(app): State<App>,
    query: Result<Query<PredictQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<FlaskJson<PredictResponse>, ApiError> {
    let topk = match query {
        Ok(Query(PredictQuery { topk: None })) => None,
        Ok(Query(PredictQuery { topk: Some(k) })) if (1..=1000).contains(&k) => {
            Some(usize::from(k))
        }
        _ => {
            return Err(ApiError::BadQuery(
                "topk must be an integer from 1 to 1000, e.g. /predict?topk=5".into(),
            ))
        }
    };
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let kind = BodyKind::from_content_type(content_type)?;
    let images = upload::images(kind, body.into_data_stream(), app.limits).await?;
    let several = images.len() > 1;
    let classifier = Arc::clone(&app.classifier);
    let sizes: Vec<usize> = images.iter().map(|image| image.len()).collect();
    let predictions = app
        .workers
        .run(move || {
            images
                .iter()
                .enumerate()
                .map(|(i, image)| classifier.classify(image).map_err(|e| (i, e)))
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
    let request_id = headers
        .get(crate::layers::REQUEST_ID)
        .and_then(|v| v.to_str().ok());
    for (prediction, bytes) in predictions.iter().zip(sizes) {
        log_prediction(prediction, bytes);
        app.metrics.record(prediction, request_id);
    }
    let mut replies: Vec<PredictReply> = predictions
        .iter()
        .map(|p| prediction_reply(p, topk.map(|k| app.classifier.top_k(p, k)).as_deref()))
        .collect();
    Ok(FlaskJson(if several {
        PredictResponse::Several(replies)
    } else {
        PredictResponse::One(replies.remove(0))
    }))
}

/// Liveness.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process answers (never loads the model)", body = Health)))]
async fn health() -> FlaskJson<Health> {
    FlaskJson(Health { status: "ok" })
}

/// The model file, its checksum and contract, and whether it is loaded.
#[utoipa::path(get, path = "/model", tag = "operations",
    responses((status = 200, description = "What model this process runs (never loads it)", body = ModelInfo)))]
async fn model(State(app): State<App>) -> FlaskJson<ModelInfo> {
    FlaskJson(model_info::describe(app.classifier.model(), &app.checksums))
}

/// The generated OpenAPI document, shared by the `/openapi.json` handler.
#[derive(Clone)]
struct OpenApiJson(Arc<String>);

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document of the routes this configuration serves", content_type = "application/json")))]
async fn openapi_json(Extension(OpenApiJson(document)): Extension<OpenApiJson>) -> Response {
    ([(CONTENT_TYPE, JSON)], document.as_str().to_owned()).into_response()
}

/// The upload page served at `GET /ui` when enabled.
const UI_PAGE: &str = include_str!("ui.html");

/// An upload page: pick an image, see the top-5 as bars (`UI_ENABLED=1`).
#[utoipa::path(get, path = "/ui", tag = "pages",
    responses((status = 200, description = "The upload page", content_type = "text/html")))]
async fn ui_page() -> Html<&'static str> {
    Html(UI_PAGE)
}

/// The entries describing Swagger UI's routes (`DOCS_ENABLED=1`), which its crate serves.
#[derive(OpenApi)]
#[openapi(paths(docs_redirect, docs_page))]
struct DocsPages;

/// The API documentation page (Swagger UI) lives at `/docs/`.
#[utoipa::path(get, path = "/docs", tag = "pages",
    responses((status = 303, description = "Redirect to /docs/", headers(("location" = String, description = "/docs/")))))]
#[allow(dead_code)]
fn docs_redirect() {}

/// The API documentation page (Swagger UI) for this document.
#[utoipa::path(get, path = "/docs/", tag = "pages",
    responses((status = 200, description = "Swagger UI", content_type = "text/html")))]
#[allow(dead_code)]
fn docs_page() {}

/// Any path that is not a route.
async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_owned())
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

/// The reply object of one prediction (with its top-k when asked), as `/predict` answers it.
pub fn prediction_reply(p: &Prediction, scored: Option<&[Scored]>) -> PredictReply {
    PredictReply {
        class_id: p.class_id,
        class_name: p.class_name.clone(),
        topk: scored.map(|s| {
            s.iter()
                .map(|s| TopK {
                    class_id: s.class_id,
                    class_name: s.class_name.clone(),
                    probability: s.probability,
                })
                .collect()
        }),
    }
}
