//! Local HTTP server edge, the tutorial's `flask run`: socket ↔ [`ApiRequest`]/[`ApiReply`].

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::api::{ApiError, ApiReply, ApiRequest, App};
use crate::upload::UploadError;

/// Binds 127.0.0.1:`port` and answers requests until the process ends.
pub async fn serve(app: App, port: u16) -> std::io::Result<()> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    run(app, listener).await
}

/// Answers requests on an already bound listener (tests bind port 0 and read the address).
pub async fn run(app: App, listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: keep serving the connections we have.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(answer(&app, request).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// One HTTP exchange: refuse oversized bodies before reading them, then hand over to the API.
async fn answer(app: &App, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let max = app.limits().max_body_bytes;
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return closing(to_response(
            ApiError::from(UploadError::TooLarge(max)).into_reply(),
        ));
    }
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return closing(to_response(
                ApiError::from(UploadError::TooLarge(max)).into_reply(),
            ));
        }
        Err(e) => {
            let error = UploadError::Malformed(format!("the body could not be read: {e}"));
            return closing(to_response(ApiError::from(error).into_reply()));
        }
    };
    let api_request = ApiRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        content_type: header(&parts.headers, CONTENT_TYPE),
        body,
        origin: header(&parts.headers, hyper::header::ORIGIN),
    };
    let head = api_request.method == "HEAD";
    let mut response = to_response(app.handle(api_request).await);
    if head {
        *response.body_mut() = Full::new(Bytes::new());
    }
    response
}

/// A header's value, if present and ASCII.
fn header(headers: &hyper::HeaderMap, name: hyper::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Asks the client to close the connection: the rest of an oversized body is never read.
fn closing(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response
        .headers_mut()
        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// [`ApiReply`] → hyper response.
fn to_response(reply: ApiReply) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(reply.status)
        .header(CONTENT_TYPE, reply.content_type);
    for (name, value) in &reply.headers {
        builder = builder.header(*name, value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(reply.body)))
        .unwrap_or_else(|_| {
            let mut fallback = Response::new(Full::new(Bytes::from_static(
                b"{\"error\":\"internal error: bad reply\"}\n",
            )));
            *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
}
