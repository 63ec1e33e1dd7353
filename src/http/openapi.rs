//! The OpenAPI document of the running configuration: the API's description, the routes'
//! entries (from [`super::routes`]), Swagger UI's pages when they are on, and what the layers
//! answer on every path. `GET /openapi.json` serves it; schemathesis checks the server against it.

use utoipa::openapi::OpenApi as OpenApiDocument;
use utoipa::{OpenApi, PartialSchema};
use utoipa_axum::router::OpenApiRouter;

use super::app::{App, Features};
use super::routes;

/// The top-level description of the document; the paths come from the routes.
#[derive(OpenApi)]
#[openapi(info(
    title = "densenet-lambda",
    description = "The PyTorch Flask tutorial's image classifier (DenseNet-121, ImageNet) as a Rust AWS Lambda function. The default replies of GET / and POST /predict are byte-identical to the tutorial's. Any path not listed here answers 404, and a listed path with another method 405 with an Allow header, both with an Error body."
))]
struct ApiInfo;

/// The routes of a configuration with their document: the tutorial's routes, the opt-in ones that
/// are on, and the entries of Swagger UI's pages (which its crate serves) when the docs are on.
pub(super) fn documented_routes(features: &Features) -> OpenApiRouter<App> {
    let mut router =
        OpenApiRouter::with_openapi(ApiInfo::openapi()).merge(routes::routes(features));
    if features.docs {
        router = router.merge(OpenApiRouter::with_openapi(DocsPages::openapi()));
    }
    router
}

/// Adds what the layers answer on every path to the routes' document: with CORS on, the CORS
/// layer answers `OPTIONS` (a browser's preflight) on every path before routing.
pub(super) fn describe_layers(
    mut document: OpenApiDocument,
    features: &Features,
) -> OpenApiDocument {
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
