//! The one error type of the HTTP contract. Every failure path of every route, and the few
//! replies the layers make themselves, flow into [`ApiError`]: [`ApiError::status`] is the only
//! place a failure becomes a status code, and its [`IntoResponse`] the only place it becomes a
//! reply (a JSON [`ErrorBody`]), so no client ever sees anything but JSON from the API.

use std::time::Duration;

use axum::http::header::{HeaderValue, ALLOW};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::classifier::ClassifyError;
use crate::preprocess::ImageError;

use super::json::FlaskJson;
use super::upload::UploadError;

/// Everything a request can get wrong, and our own failures.
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
                // Given up by the timeout (which answered 503) or by the client, who is gone.
                ClassifyError::Image(ImageError::Abandoned) => StatusCode::SERVICE_UNAVAILABLE,
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
                response.headers_mut().insert(ALLOW, value);
            }
        }
        response
    }
}

/// Every error reply: what went wrong and what to send instead.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"error": "no \"file\" field in the form; send the image in a field named \"file\" (curl -F file=@image.jpg)"}))]
pub struct ErrorBody {
    /// What went wrong and what to do instead.
    pub error: String,
}
