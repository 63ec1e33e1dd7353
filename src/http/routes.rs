//! The routes: one handler per route with its reply types and its OpenAPI description (utoipa
//! reads both from here, so the document describes exactly what runs). Adding a route is a
//! handler here and one line in `routes()`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::classifier::{ClassifyError, Prediction, Scored};
use crate::preprocess::CancelOnDrop;

use super::app::{App, Features};
use super::error::{ApiError, ErrorBody};
use super::json::{FlaskJson, JSON};
use super::layers::REQUEST_ID;
use super::model_info::{self, ModelInfo};
use super::upload::{self, BodyKind};

/// The tutorial's greeting on `GET /`.
pub const GREETING: &str = "Try POSTing to the /predict endpoint with an RGB image attachment";

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

/// The routes of a configuration, each with its OpenAPI entry; opt-in ones only when on.
pub(super) fn routes(features: &Features) -> OpenApiRouter<App> {
    let mut router = OpenApiRouter::new()
        .routes(routes!(greeting))
        .routes(routes!(predict))
        .routes(routes!(health))
        .routes(routes!(model))
        .routes(routes!(openapi_json));
    if features.ui {
        router = router.routes(routes!(ui_page));
    }
    router
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
        (status = 413, description = "The body is larger than MAX_BODY_BYTES, or the image's dimensions, decoded size or estimated decode time exceed the decode limits", body = ErrorBody),
        (status = 415, description = "A Content-Type other than multipart/form-data, image/* or application/octet-stream; or a body (or `file` part) that matches the schema but is not a decodable JPEG, PNG, GIF, WebP, BMP or TIFF image", body = ErrorBody),
        (status = 500, description = "The model could not be loaded or run (the message names the file and the fix)", body = ErrorBody),
        (status = 503, description = "The request took longer than REQUEST_TIMEOUT_SECS (its decoding stops then)", body = ErrorBody),
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
    let images = upload::images(kind, body.into_data_stream(), app.limits()).await?;
    let several = images.len() > 1;
    let classifier = Arc::clone(&app.classifier);
    let sizes: Vec<usize> = images.iter().map(|image| image.len()).collect();
    // The request's images share one decode allowance, cancelled when this handler is dropped:
    // by the timeout layer, or by the server when the client goes away. The worker then stops
    // decoding within a row or a scan, and is free for the next request.
    let allowance = classifier.allowance();
    let _cancel_when_given_up = CancelOnDrop(allowance.clone());
    let predictions = app
        .workers
        .run(move || {
            images
                .iter()
                .enumerate()
                .map(|(i, image)| {
                    classifier
                        .classify_within(image, &allowance)
                        .map_err(|e| (i, e))
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
    let request_id = headers.get(REQUEST_ID).and_then(|v| v.to_str().ok());
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
pub(super) struct OpenApiJson(pub(super) Arc<String>);

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

/// Any path that is not a route.
pub(super) async fn not_found(uri: Uri) -> ApiError {
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
