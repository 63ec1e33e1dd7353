//! The HTTP layers around the router, from tower-http: cross-origin access, the body-size limit,
//! a request timeout, request ids and tracing. What is ours is `json_errors`: the few replies
//! these layers and axum make themselves (413, 503, 405) become the API's JSON errors, so a
//! client never sees anything but JSON from the API.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use super::app::App;
use super::error::ApiError;
use super::json::JSON;
use super::upload::{UploadError, UploadLimits};

/// The address of the client that sent a request, as the runner knows it (the TCP peer under
/// `serve`, the source IP API Gateway or the Function URL saw under Lambda): named by every log
/// line of the request, so that an abuser can be found and blocked. Runners put it in the
/// request's extensions; a request without it is logged with `client=-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress(pub String);

/// The header that carries a request's id: the client's if it sent one, the Lambda request id
/// under Lambda (set by the Lambda runner), else a new UUID. Replies carry it back.
pub const REQUEST_ID: &str = "x-request-id";

/// Wraps the routes in the layers: request id and tracing outermost, then the JSON errors, CORS,
/// the timeout and the body limit. They wrap the router as a whole (axum's `Router::layer` would
/// wrap each route instead, inside the routing that answers 405), so they see every reply.
pub fn apply(routes: Router, app: &App) -> Router {
    let limits = app.limits();
    let timeout = app.timeout();
    let service = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(middleware::from_fn_with_state(
            ErrorContext { limits, timeout },
            json_errors,
        ))
        .option_layer(cors(&app.features().cors_origins))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        // The limit's reply body type, as the body the layers above it can make replies of.
        .map_response(IntoResponse::into_response)
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .service(routes);
    Router::new().fallback_service(service)
}

/// The tracing span of a request: every log line inside it names the request id.
fn request_span(request: &Request) -> tracing::Span {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let client = request
        .extensions()
        .get::<ClientAddress>()
        .map_or("-", |c| c.0.as_str());
    tracing::info_span!("request", method = %request.method(), path = request.uri().path(), request_id = id, client)
}

/// CORS for the configured origins (`*` for any), or none when the list is empty: replies to a
/// listed origin carry `Access-Control-Allow-Origin`, and preflights of `POST /predict` with a
/// `Content-Type` are answered (cached by the browser for ten minutes).
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([CONTENT_TYPE])
            .max_age(Duration::from_secs(600)),
    )
}

/// Parses `CORS_ALLOW_ORIGINS`: a comma-separated list of origins, or `*`; blank entries dropped.
pub fn parse_origins(setting: &str) -> Vec<String> {
    setting
        .split(',')
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect()
}

/// What the JSON error messages of the layers' replies mention.
#[derive(Debug, Clone, Copy)]
struct ErrorContext {
    limits: UploadLimits,
    timeout: Duration,
}

/// Turns an error reply that is not JSON (made by a layer or by axum's routing: 405 with its
/// `Allow` header, 413 from the body limit, 503 from the timeout) into the API's JSON error for
/// that status, keeping its other headers.
async fn json_errors(
    State(ErrorContext { limits, timeout }): State<ErrorContext>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(JSON.as_bytes()));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed {
            method: method.to_string(),
            path,
            allowed: response
                .headers()
                .get(ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("another method")
                .to_owned(),
        },
        StatusCode::PAYLOAD_TOO_LARGE => UploadError::TooLarge(limits.max_body_bytes).into(),
        StatusCode::SERVICE_UNAVAILABLE => ApiError::Timeout(timeout),
        StatusCode::NOT_FOUND => ApiError::NotFound(path),
        other => ApiError::Internal(format!("{other} from the HTTP layers")),
    };
    let (parts, _) = response.into_parts();
    let mut reply = error.into_response();
    for (name, value) in &parts.headers {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            reply.headers_mut().insert(name, value.clone());
        }
    }
    reply
}
