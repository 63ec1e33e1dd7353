//! The HTTP contract as one axum [`Router`]: what `GET /` and `POST /predict` (and the opt-in
//! routes) answer, for every runner alike. The Lambda function runs it under `lambda_http`, the
//! local server under `axum::serve`, and the CLI's `classify` sends it requests; none of them adds
//! a route or a reply of its own.
//!
//! - [`app`]: the state every route shares (classifier, limits, features, workers, metrics);
//! - [`routes`]: one handler per route, its reply types and its OpenAPI entry;
//! - [`error`]: the one error type, the only place a failure becomes a status and a JSON reply;
//! - [`json`]: replies serialised as the tutorial's Flask `jsonify` does;
//! - [`openapi`]: the document of exactly the routes this configuration serves;
//! - [`layers`]: tower-http's CORS, body limit, timeout, request ids and tracing around it all;
//! - [`upload`]: request body → image bytes (multipart or raw);
//! - [`workers`]: the threads that decode and infer;
//! - [`metrics`], [`model_info`]: CloudWatch records and the `GET /model` reply.
//!
//! Below this room is the core ([`crate::classifier`]), which knows nothing of HTTP.

pub mod app;
pub mod error;
pub mod json;
pub mod layers;
pub mod metrics;
pub mod model_info;
pub mod openapi;
pub mod routes;
pub mod upload;
pub mod workers;

use std::sync::Arc;

use axum::{Extension, Router};

pub use app::{App, Features, DEFAULT_TIMEOUT};
pub use error::ApiError;

/// Builds the router of the running configuration: the tutorial's routes, the opt-in ones that
/// are on, the OpenAPI document of exactly those, and the HTTP layers (CORS, body limit,
/// timeout, request ids and tracing; see [`layers`]).
pub fn router(app: App) -> Router {
    let (routes, document) = openapi::documented_routes(app.features()).split_for_parts();
    let document = openapi::describe_layers(document, app.features());
    let document = Arc::new(
        document
            .to_pretty_json()
            .expect("the OpenAPI document always serialises")
            + "\n",
    );
    let mut routes = routes.layer(Extension(routes::OpenApiJson(document)));
    if app.features().docs {
        routes = routes.merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs")
                .config(utoipa_swagger_ui::Config::from("/openapi.json")),
        );
    }
    let routes = routes.fallback(routes::not_found).with_state(app.clone());
    layers::apply(routes, &app)
}
