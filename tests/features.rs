//! The opt-in additions beyond the tutorial (TorchServe-style), each through the router both
//! edges run; the default replies stay byte-equal to the seed's. The OpenAPI document is checked
//! against real replies in both directions.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{call, Reply};
use densenet_lambda::http::{App, Features};

const KITTEN_REPLY: &str = "{\"class_id\":282,\"class_name\":\"tiger_cat\"}\n";

fn form(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    (
        "multipart/form-data; boundary=b0undary".to_owned(),
        common::multipart("b0undary", parts),
    )
}

fn app() -> App {
    common::app_with_model(common::efficientnet())
}

fn router() -> axum::Router {
    common::router(app())
}

fn all_on() -> Features {
    Features {
        cors_origins: vec!["*".into()],
        ui: true,
        docs: true,
    }
}

async fn post(router: &axum::Router, uri: &str, content_type: &str, body: Vec<u8>) -> Reply {
    call(router, "POST", uri, &[("content-type", content_type)], body).await
}

#[tokio::test]
async fn raw_image_body_gets_the_same_reply_as_multipart() {
    let router = router();
    let kitten = common::sample_bytes("kitten.jpg");
    for content_type in ["image/jpeg", "image/png", "application/octet-stream"] {
        let reply = post(&router, "/predict", content_type, kitten.clone()).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, KITTEN_REPLY),
            "{content_type}"
        );
    }
}

#[tokio::test]
async fn topk_adds_sorted_softmax_probabilities() {
    let router = router();
    let (ct, body) = form(&[("file", "kitten.jpg", &common::sample_bytes("kitten.jpg"))]);
    let reply = post(&router, "/predict?topk=5", &ct, body).await;
    assert_eq!(reply.status, 200);
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert!(
        reply
            .body
            .starts_with("{\"class_id\":282,\"class_name\":\"tiger_cat\",\"topk\":["),
        "{}",
        reply.body
    );
    let topk = json["topk"].as_array().unwrap();
    assert_eq!(topk.len(), 5);
    let reference = &common::reference("kitten.jpg")["efficientnet_lite0"]["top5"];
    for (ours, theirs) in topk.iter().zip(reference.as_array().unwrap()) {
        assert_eq!(ours["class_id"], theirs["class_id"]);
        assert_eq!(ours["class_name"], theirs["class_name"]);
        let (p, q) = (
            ours["probability"].as_f64().unwrap(),
            theirs["prob"].as_f64().unwrap(),
        );
        assert!((p - q).abs() < 0.01, "{p} vs {q}");
    }
    let probabilities: Vec<f64> = topk
        .iter()
        .map(|t| t["probability"].as_f64().unwrap())
        .collect();
    assert!(probabilities.windows(2).all(|w| w[0] >= w[1]));
    for bad in ["0", "1001", "x", "", "-1"] {
        let reply = post(
            &router,
            &format!("/predict?topk={bad}"),
            "image/jpeg",
            vec![1],
        )
        .await;
        assert_eq!(reply.status, 400, "topk={bad}: {}", reply.body);
        assert!(reply.body.contains("topk must be"), "{}", reply.body);
    }
}

#[test]
fn classify_cli_prints_what_predict_answers() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_densenet-lambda"))
        .args(["classify", "--topk", "3"])
        .arg(common::sample("kitten.jpg"))
        .arg(common::sample("imagenet_n04254680_soccer_ball.JPEG"))
        .env("MODEL_PATH", common::efficientnet())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let router = router();
    for (line, name) in lines
        .iter()
        .zip(["kitten.jpg", "imagenet_n04254680_soccer_ball.JPEG"])
    {
        let reply = rt.block_on(post(
            &router,
            "/predict?topk=3",
            "image/jpeg",
            common::sample_bytes(name),
        ));
        assert_eq!(format!("{line}\n"), reply.body);
    }
}

#[tokio::test]
async fn several_files_answer_an_array_in_order() {
    let router = router();
    let (kitten, ball) = (
        common::sample_bytes("kitten.jpg"),
        common::sample_bytes("imagenet_n04254680_soccer_ball.JPEG"),
    );
    let (ct, body) = form(&[
        ("file", "a.jpg", &ball),
        ("other", "x", b"ignored"),
        ("file", "b.jpg", &kitten),
    ]);
    let reply = post(&router, "/predict", &ct, body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "[{\"class_id\":805,\"class_name\":\"soccer_ball\"},{\"class_id\":282,\"class_name\":\"tiger_cat\"}]\n");
    let (ct, body) = form(&[
        ("file", "a.jpg", &kitten),
        ("file", "b.txt", b"not an image"),
    ]);
    let reply = post(&router, "/predict", &ct, body).await;
    assert_eq!(reply.status, 415);
    assert!(
        reply.body.contains("file 2 of the upload"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn health_and_model_never_load_the_model() {
    let router = router();
    let health = call(&router, "GET", "/health", &[], vec![]).await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (200, "{\"status\":\"ok\"}\n")
    );
    let model = || async { call(&router, "GET", "/model", &[], vec![]).await.body };
    let before: serde_json::Value = serde_json::from_str(&model().await).unwrap();
    assert_eq!(before["loaded"], false);
    assert_eq!(before["file"], "efficientnet_lite0.onnx");
    assert_eq!(
        before["sha256"],
        "b6e1e344d298f3a0b51c482d41dab1436e766d63431a664a4c48282d630ed979"
    );
    assert_eq!(before["input_shape"], serde_json::json!([1, 3, 224, 224]));
    assert!(before["classes"].is_null() && before["load_ms"].is_null());
    let tract_pin =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    assert!(tract_pin.contains(&format!(
        "tract-onnx = \"={}\"",
        before["tract_version"].as_str().unwrap()
    )));

    post(
        &router,
        "/predict",
        "image/jpeg",
        common::sample_bytes("kitten.jpg"),
    )
    .await;
    let after: serde_json::Value = serde_json::from_str(&model().await).unwrap();
    assert_eq!(after["loaded"], true);
    assert_eq!(after["classes"], 1000);
    assert_eq!(after["output_shape"], serde_json::json!([1, 1000]));
    assert!(after["load_ms"].as_f64().unwrap() > 0.0);
}

/// Whether a reply carries any CORS header.
fn has_cors(reply: &Reply) -> bool {
    reply
        .headers
        .keys()
        .any(|name| name.as_str().starts_with("access-control"))
}

#[tokio::test]
async fn cors_is_off_by_default_and_exact_when_configured() {
    let origin = [("origin", "https://app.example")];
    let plain = router();
    assert!(!has_cors(&call(&plain, "GET", "/", &origin, vec![]).await));
    let preflight = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "content-type"),
    ];
    let reply = call(&plain, "OPTIONS", "/predict", &preflight, vec![]).await;
    assert_eq!(reply.status, 405);
    assert!(!has_cors(&reply));

    let router = common::router(app().with_features(Features {
        cors_origins: vec!["https://app.example".into()],
        ..Features::default()
    }));
    let reply = call(&router, "GET", "/", &origin, vec![]).await;
    assert_eq!(
        reply.header("access-control-allow-origin"),
        "https://app.example"
    );
    let evil = [("origin", "https://evil.example")];
    assert!(!has_cors(&call(&router, "GET", "/", &evil, vec![]).await));
    let reply = call(&router, "OPTIONS", "/predict", &preflight, vec![]).await;
    assert_eq!(reply.status, 200);
    assert!(reply
        .header("access-control-allow-methods")
        .contains("POST"));
    assert_eq!(
        reply.header("access-control-allow-origin"),
        "https://app.example"
    );
    // Error replies carry the header too, so a browser can read the JSON error.
    let reply = post(&router, "/predict", "text/plain", b"hi".to_vec()).await;
    assert_eq!(reply.status, 415);
    assert_eq!(reply.header("access-control-allow-origin"), "");
    let reply = call(
        &router,
        "POST",
        "/predict",
        &[
            ("origin", "https://app.example"),
            ("content-type", "text/plain"),
        ],
        b"hi".to_vec(),
    )
    .await;
    assert_eq!(
        (reply.status, reply.header("access-control-allow-origin")),
        (415, "https://app.example")
    );
}

#[tokio::test]
async fn ui_and_docs_pages_only_when_enabled() {
    let plain = router();
    for path in ["/ui", "/docs", "/docs/"] {
        let reply = call(&plain, "GET", path, &[], vec![]).await;
        assert_eq!(reply.status, 404, "{path}");
    }
    let router = common::router(app().with_features(all_on()));
    let reply = call(&router, "GET", "/ui", &[], vec![]).await;
    assert_eq!(
        (reply.status, reply.header("content-type")),
        (200, "text/html; charset=utf-8")
    );
    assert!(reply.body.contains("predict?topk=5"));
    let reply = call(&router, "GET", "/docs", &[], vec![]).await;
    assert_eq!((reply.status, reply.header("location")), (303, "/docs/"));
    let reply = call(&router, "GET", "/docs/", &[], vec![]).await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("swagger"), "{}", reply.body);
    let reply = call(&router, "GET", "/docs/swagger-initializer.js", &[], vec![]).await;
    assert!(reply.body.contains("/openapi.json"), "{}", reply.body);
}

/// A request to send: router, method, path, Content-Type, body.
type Case<'a> = (&'a axum::Router, &'a str, &'a str, Option<&'a str>, Vec<u8>);

/// The document a router serves at `/openapi.json`.
async fn document(router: &axum::Router) -> serde_json::Value {
    let reply = call(router, "GET", "/openapi.json", &[], vec![]).await;
    assert_eq!(reply.header("content-type"), "application/json");
    serde_json::from_str(&reply.body).unwrap()
}

/// (path, METHOD, status) for every response the document lists.
fn documented(document: &serde_json::Value) -> BTreeSet<(String, String, u16)> {
    let mut listed = BTreeSet::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            for status in operation["responses"].as_object().unwrap().keys() {
                listed.insert((path.clone(), method.to_uppercase(), status.parse().unwrap()));
            }
        }
    }
    listed
}

/// Every (path, method, status) the OpenAPI document lists is produced by a real request, and
/// every reply these requests get is listed, at the defaults and with every opt-in feature on.
#[tokio::test]
async fn openapi_document_matches_the_real_replies() {
    let kitten = common::sample_bytes("kitten.jpg");
    let (ct, good) = form(&[("file", "k.jpg", &kitten)]);
    let (_, no_file) = form(&[("nofile", "k.jpg", &kitten)]);
    let slow = common::router(app().with_timeout(Duration::from_millis(1)));
    let missing_model = common::router(common::app_with_model("/nonexistent/model.onnx".into()));
    for features in [Features::default(), all_on()] {
        let router = common::router(app().with_features(features.clone()));
        let mut cases: Vec<Case> = vec![
            (&router, "GET", "/", None, vec![]),
            (&router, "POST", "/predict", Some(&ct), good.clone()),
            (&router, "POST", "/predict", Some(&ct), no_file.clone()),
            (
                &router,
                "POST",
                "/predict",
                Some("image/jpeg"),
                vec![0; 7 << 20],
            ),
            (
                &router,
                "POST",
                "/predict",
                Some("text/plain"),
                b"hi".to_vec(),
            ),
            (
                &router,
                "POST",
                "/predict",
                Some("image/png"),
                b"not a png".to_vec(),
            ),
            (&missing_model, "POST", "/predict", Some(&ct), good.clone()),
            (&slow, "POST", "/predict", Some(&ct), good.clone()),
            (&router, "GET", "/health", None, vec![]),
            (&router, "GET", "/model", None, vec![]),
            (&router, "GET", "/openapi.json", None, vec![]),
        ];
        if features.ui {
            cases.push((&router, "GET", "/ui", None, vec![]));
        }
        if features.docs {
            cases.push((&router, "GET", "/docs", None, vec![]));
            cases.push((&router, "GET", "/docs/", None, vec![]));
        }
        if features.cors() {
            // The CORS layer answers preflights on every path.
            let paths: BTreeSet<&str> = cases.iter().map(|case| case.2).collect();
            for path in paths {
                cases.push((&router, "OPTIONS", path, None, vec![]));
            }
        }
        let mut produced = BTreeSet::new();
        for (router, method, path, content_type, body) in cases {
            let headers: Vec<(&str, &str)> = content_type
                .map(|ct| ("content-type", ct))
                .into_iter()
                .collect();
            let reply = call(router, method, path, &headers, body).await;
            produced.insert((path.to_owned(), method.to_owned(), reply.status));
        }
        assert_eq!(
            produced,
            documented(&document(&router).await),
            "{features:?}: left: produced by real requests, right: documented"
        );
    }
}

/// A method the document does not list for a path is a 405 whose `Allow` header names exactly
/// the listed ones (and HEAD with GET), and whose body is the JSON error.
#[tokio::test]
async fn undocumented_methods_are_405_with_the_documented_ones_allowed() {
    for features in [Features::default(), all_on()] {
        let router = common::router(app().with_features(features.clone()));
        let document = document(&router).await;
        for (path, operations) in document["paths"].as_object().unwrap() {
            let mut listed: BTreeSet<String> = operations
                .as_object()
                .unwrap()
                .keys()
                .map(|m| m.to_uppercase())
                .collect();
            if listed.contains("GET") {
                listed.insert("HEAD".into());
            }
            for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"] {
                if listed.contains(method) {
                    continue;
                }
                let reply = call(&router, method, path, &[], vec![]).await;
                assert_eq!(reply.status, 405, "{features:?} {method} {path}");
                let allowed: BTreeSet<String> = reply
                    .header("allow")
                    .split(',')
                    .map(|m| m.trim().to_owned())
                    .collect();
                // OPTIONS is the CORS layer's answer before routing; Allow names the route's.
                let routed: BTreeSet<String> =
                    listed.iter().filter(|m| *m != "OPTIONS").cloned().collect();
                assert_eq!(allowed, routed, "{method} {path}");
                let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
                let error = json["error"].as_str().unwrap();
                assert!(
                    error.contains("not allowed")
                        && error.contains(&format!("use {}", reply.header("allow"))),
                    "{error}"
                );
            }
        }
    }
}
