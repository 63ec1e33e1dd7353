//! The AWS Lambda runner: the HTTP router run by `lambda_http::run`, nothing else.
//!
//! Every trigger lambda_http understands arrives here: API Gateway REST (v1) and HTTP (v2) APIs,
//! Function URLs and ALB. lambda_http has already base64-decoded binary bodies; this module only
//! removes the API Gateway stage from the path (`/Prod/predict` reaches `/predict`), hands the
//! Lambda request id to the router as the request's `x-request-id`, and the client's address from
//! the request context to its log lines.

use axum::http::{HeaderValue, Uri};
use axum::Router;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use tower::util::MapRequestLayer;
use tower::Layer;

use crate::http::layers::{ClientAddress, REQUEST_ID};

/// Runs the Lambda runtime loop until the runtime stops it. The router never fails (every
/// error is a JSON reply), so the function never returns an `Err` that API Gateway would turn
/// into a bare 502.
pub async fn run(router: Router) -> Result<(), lambda_http::Error> {
    lambda_http::run(service(router)).await
}

/// The router as the Lambda runtime calls it (tests send events through this).
pub fn service(router: Router) -> tower::util::MapRequest<Router, fn(Request) -> Request> {
    MapRequestLayer::new(from_event as fn(Request) -> Request).layer(router)
}

/// The stage prefix removed from the path, the Lambda request id set as the request's id, the
/// client's address noted.
fn from_event(mut request: Request) -> Request {
    if let Some(context) = request.lambda_context_ref() {
        if let Ok(id) = HeaderValue::from_str(&context.request_id) {
            request.headers_mut().insert(REQUEST_ID, id);
        }
    }
    if let Some(address) = client_address(&request) {
        request.extensions_mut().insert(ClientAddress(address));
    }
    let path = route_path(request.uri().path(), stage(&request).as_deref());
    if path != request.uri().path() {
        let path_and_query = match request.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        let mut parts = request.uri().clone().into_parts();
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    request
}

/// The client's address: the source IP in the request context (API Gateway REST and HTTP APIs,
/// Function URLs: what the gateway saw, which the client cannot forge); behind an ALB, the last
/// `X-Forwarded-For` entry, the one the load balancer appended.
fn client_address(event: &Request) -> Option<String> {
    let from_context = match event.request_context_ref()? {
        RequestContext::ApiGatewayV1(ctx) => ctx.identity.source_ip.clone(),
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.clone(),
        _ => None,
    };
    from_context.or_else(|| {
        let forwarded = event.headers().get("x-forwarded-for")?.to_str().ok()?;
        let last = forwarded.rsplit(',').next()?.trim();
        (!last.is_empty()).then(|| last.to_owned())
    })
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
