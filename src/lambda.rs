//! AWS Lambda edge: `lambda_http::Request` ↔ [`ApiRequest`]/[`ApiReply`], nothing else.
//!
//! Every trigger lambda_http understands arrives here: API Gateway REST (v1) and HTTP (v2) APIs,
//! Function URLs and ALB. lambda_http has already base64-decoded binary bodies; this module
//! removes the API Gateway stage from the path, so `/Prod/predict` reaches `/predict`.

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

use crate::api::{ApiReply, ApiRequest, App};

/// Runs the Lambda runtime loop until the runtime stops it. The handler never returns `Err`:
/// API Gateway would turn that into a bare 502.
pub async fn run(app: App) -> Result<(), lambda_http::Error> {
    let app = &app;
    lambda_http::run(lambda_http::service_fn(move |event: Request| async move {
        Ok::<_, lambda_http::Error>(handle(app, event).await)
    }))
    .await
}

/// Answers one Lambda HTTP event.
pub async fn handle(app: &App, event: Request) -> Response<Body> {
    to_response(app.handle(to_api_request(event)).await)
}

/// `lambda_http::Request` → [`ApiRequest`].
pub fn to_api_request(event: Request) -> ApiRequest {
    let path = route_path(event.uri().path(), stage(&event).as_deref());
    let (parts, body) = event.into_parts();
    let body = match body {
        Body::Empty => bytes::Bytes::new(),
        Body::Text(text) => bytes::Bytes::from(text),
        Body::Binary(data) => bytes::Bytes::from(data),
        _ => bytes::Bytes::new(),
    };
    ApiRequest {
        method: parts.method.as_str().to_owned(),
        path,
        query: parts.uri.query().map(str::to_owned),
        content_type: header(&parts.headers, http::header::CONTENT_TYPE),
        body,
        origin: header(&parts.headers, http::header::ORIGIN),
    }
}

/// A header's value, if present and ASCII.
fn header(headers: &http::HeaderMap, name: http::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The API Gateway stage of the event, if it has a named one.
fn stage(event: &Request) -> Option<String> {
    let stage = match event.request_context_ref()? {
        RequestContext::ApiGatewayV1(ctx) => ctx.stage.clone(),
        RequestContext::ApiGatewayV2(ctx) => ctx.stage.clone(),
        _ => None,
    };
    stage.filter(|s| s != "$default" && !s.is_empty())
}

/// Strips `/<stage>` from the front of a path: `/Prod/predict` → `/predict`, `/Prod` → `/`.
pub fn route_path(path: &str, stage: Option<&str>) -> String {
    if let Some(stage) = stage {
        if let Some(rest) = path.strip_prefix('/').and_then(|p| p.strip_prefix(stage)) {
            if rest.is_empty() {
                return "/".to_owned();
            }
            if rest.starts_with('/') {
                return rest.to_owned();
            }
        }
    }
    if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    }
}

/// [`ApiReply`] → `lambda_http::Response`, JSON text body.
pub fn to_response(reply: ApiReply) -> Response<Body> {
    let mut builder = Response::builder()
        .status(reply.status)
        .header(http::header::CONTENT_TYPE, reply.content_type);
    for (name, value) in &reply.headers {
        builder = builder.header(*name, value.as_str());
    }
    builder.body(Body::Text(reply.body)).unwrap_or_else(|_| {
        let mut fallback = Response::new(Body::Text(
            "{\"error\":\"internal error: bad reply\"}\n".into(),
        ));
        *fallback.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

#[cfg(test)]
mod tests {
    use super::route_path;

    #[test]
    fn stage_prefix_is_removed() {
        assert_eq!(route_path("/Prod/predict", Some("Prod")), "/predict");
        assert_eq!(route_path("/Prod", Some("Prod")), "/");
        assert_eq!(route_path("/Prod/", Some("Prod")), "/");
        assert_eq!(route_path("/predict", Some("Prod")), "/predict");
        assert_eq!(
            route_path("/Production/predict", Some("Prod")),
            "/Production/predict"
        );
        assert_eq!(route_path("/predict", None), "/predict");
    }
}
