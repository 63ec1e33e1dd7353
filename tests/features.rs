//! The opt-in additions beyond the tutorial (TorchServe-style), each through the same API both
//! edges use; the default replies stay byte-equal to the seed's.

mod common;

use std::collections::BTreeSet;

use densenet_lambda::api::{ApiRequest, App, Features, OPENAPI};
use densenet_lambda::cors::Cors;

const KITTEN_REPLY: &str = "{\"class_id\":282,\"class_name\":\"tiger_cat\"}\n";

fn request(method: &str, path: &str, content_type: Option<&str>, body: Vec<u8>) -> ApiRequest {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (path.to_owned(), None),
    };
    ApiRequest {
        method: method.into(),
        path,
        query,
        content_type: content_type.map(str::to_owned),
        body: body.into(),
        origin: None,
    }
}

fn form(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    (
        "multipart/form-data; boundary=b0undary".to_owned(),
        common::multipart("b0undary", parts),
    )
}

fn app() -> App {
    common::app_with_model(common::efficientnet())
}

#[tokio::test]
async fn raw_image_body_gets_the_same_reply_as_multipart() {
    let app = app();
    let kitten = common::sample_bytes("kitten.jpg");
    for content_type in ["image/jpeg", "image/png", "application/octet-stream"] {
        let reply = app
            .handle(request(
                "POST",
                "/predict",
                Some(content_type),
                kitten.clone(),
            ))
            .await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, KITTEN_REPLY),
            "{content_type}"
        );
    }
}

#[tokio::test]
async fn topk_adds_sorted_softmax_probabilities() {
    let app = app();
    let (ct, body) = form(&[("file", "kitten.jpg", &common::sample_bytes("kitten.jpg"))]);
    let reply = app
        .handle(request("POST", "/predict?topk=5", Some(&ct), body))
        .await;
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
        let reply = app
            .handle(request(
                "POST",
                &format!("/predict?topk={bad}"),
                Some("image/jpeg"),
                vec![1],
            ))
            .await;
        assert_eq!(reply.status, 400, "topk={bad}: {}", reply.body);
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
    let app = app();
    for (line, name) in lines
        .iter()
        .zip(["kitten.jpg", "imagenet_n04254680_soccer_ball.JPEG"])
    {
        let reply = rt.block_on(app.handle(request(
            "POST",
            "/predict?topk=3",
            Some("image/jpeg"),
            common::sample_bytes(name),
        )));
        assert_eq!(format!("{line}\n"), reply.body);
    }
}

#[tokio::test]
async fn several_files_answer_an_array_in_order() {
    let app = app();
    let (kitten, ball) = (
        common::sample_bytes("kitten.jpg"),
        common::sample_bytes("imagenet_n04254680_soccer_ball.JPEG"),
    );
    let (ct, body) = form(&[
        ("file", "a.jpg", &ball),
        ("other", "x", b"ignored"),
        ("file", "b.jpg", &kitten),
    ]);
    let reply = app
        .handle(request("POST", "/predict", Some(&ct), body))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "[{\"class_id\":805,\"class_name\":\"soccer_ball\"},{\"class_id\":282,\"class_name\":\"tiger_cat\"}]\n");
    let (ct, body) = form(&[
        ("file", "a.jpg", &kitten),
        ("file", "b.txt", b"not an image"),
    ]);
    let reply = app
        .handle(request("POST", "/predict", Some(&ct), body))
        .await;
    assert_eq!(reply.status, 415);
    assert!(
        reply.body.contains("file 2 of the upload"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn health_and_model_never_load_the_model() {
    let app = app();
    let health = app.handle(request("GET", "/health", None, vec![])).await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (200, "{\"status\":\"ok\"}\n")
    );
    let before: serde_json::Value = serde_json::from_str(
        &app.handle(request("GET", "/model", None, vec![]))
            .await
            .body,
    )
    .unwrap();
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

    app.handle(request(
        "POST",
        "/predict",
        Some("image/jpeg"),
        common::sample_bytes("kitten.jpg"),
    ))
    .await;
    let after: serde_json::Value = serde_json::from_str(
        &app.handle(request("GET", "/model", None, vec![]))
            .await
            .body,
    )
    .unwrap();
    assert_eq!(after["loaded"], true);
    assert_eq!(after["classes"], 1000);
    assert_eq!(after["output_shape"], serde_json::json!([1, 1000]));
    assert!(after["load_ms"].as_f64().unwrap() > 0.0);
}

/// Whether a reply carries any CORS header.
fn has_cors(reply: &densenet_lambda::api::ApiReply) -> bool {
    reply
        .headers
        .iter()
        .any(|(name, _)| name.starts_with("access-control"))
}

#[tokio::test]
async fn cors_is_off_by_default_and_exact_when_configured() {
    let mut get = request("GET", "/", None, vec![]);
    get.origin = Some("https://app.example".into());
    assert!(!has_cors(&app().handle(get.clone()).await));
    assert_eq!(
        app()
            .handle(request("OPTIONS", "/predict", None, vec![]))
            .await
            .status,
        405
    );

    let app = app().with_features(Features {
        cors: Cors::parse(Some("https://app.example")),
        ui: false,
    });
    let reply = app.handle(get.clone()).await;
    assert!(reply
        .headers
        .contains(&("access-control-allow-origin", "https://app.example".into())));
    get.origin = Some("https://evil.example".into());
    assert!(!has_cors(&app.handle(get).await));
    let mut preflight = request("OPTIONS", "/predict", None, vec![]);
    preflight.origin = Some("https://app.example".into());
    let reply = app.handle(preflight).await;
    assert_eq!(reply.status, 204);
    assert!(reply
        .headers
        .iter()
        .any(|(n, v)| *n == "access-control-allow-methods" && v.contains("POST")));
}

#[tokio::test]
async fn ui_page_only_when_enabled() {
    assert_eq!(
        app()
            .handle(request("GET", "/ui", None, vec![]))
            .await
            .status,
        404
    );
    let app = app().with_features(Features {
        cors: Cors::Off,
        ui: true,
    });
    let reply = app.handle(request("GET", "/ui", None, vec![])).await;
    assert_eq!(
        (reply.status, reply.content_type),
        (200, "text/html; charset=utf-8")
    );
    assert!(reply.body.contains("predict?topk=5"));
}

/// Every (path, method, status) the OpenAPI document lists is produced by a real request, and
/// every reply these requests get is listed. A 405 is listed under a path's operations and
/// produced by the other methods, so both sides record it as (path, "other methods", 405).
#[tokio::test]
async fn openapi_document_matches_the_real_replies() {
    let document: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
    let mut documented = BTreeSet::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            for status in operation["responses"].as_object().unwrap().keys() {
                let status = status.parse::<u16>().unwrap();
                let method = if status == 405 {
                    "other methods".to_owned()
                } else {
                    method.to_uppercase()
                };
                documented.insert((path.clone(), method, status));
            }
        }
    }

    let kitten = common::sample_bytes("kitten.jpg");
    let plain = app();
    let all_on = app().with_features(Features {
        cors: Cors::AnyOrigin,
        ui: true,
    });
    let missing_model = common::app_with_model("/nonexistent/model.onnx".into());
    let (ct, good) = form(&[("file", "k.jpg", &kitten)]);
    let cases: Vec<(&App, ApiRequest)> = vec![
        (&plain, request("GET", "/", None, vec![])),
        (&plain, request("DELETE", "/", None, vec![])),
        (&plain, request("POST", "/predict", Some(&ct), good.clone())),
        (
            &plain,
            request(
                "POST",
                "/predict",
                Some(&ct),
                form(&[("nofile", "k.jpg", &kitten)]).1,
            ),
        ),
        (&plain, request("GET", "/predict", None, vec![])),
        (
            &plain,
            request(
                "POST",
                "/predict",
                Some("image/jpeg"),
                vec![0; 7 * 1024 * 1024],
            ),
        ),
        (
            &plain,
            request("POST", "/predict", Some("text/plain"), b"hi".to_vec()),
        ),
        (
            &missing_model,
            request("POST", "/predict", Some(&ct), good.clone()),
        ),
        (&all_on, request("OPTIONS", "/predict", None, vec![])),
        (&plain, request("OPTIONS", "/predict", None, vec![])),
        (&plain, request("GET", "/health", None, vec![])),
        (&plain, request("POST", "/health", None, vec![])),
        (&plain, request("GET", "/model", None, vec![])),
        (&plain, request("PUT", "/model", None, vec![])),
        (&plain, request("GET", "/openapi.json", None, vec![])),
        (&plain, request("POST", "/openapi.json", None, vec![])),
        (&all_on, request("GET", "/ui", None, vec![])),
        (&plain, request("GET", "/ui", None, vec![])),
        (&all_on, request("POST", "/ui", None, vec![])),
    ];
    let mut produced = BTreeSet::new();
    for (app, request) in cases {
        let key = (request.path.clone(), request.method.clone());
        let reply = app.handle(request).await;
        if reply.status == 200 && key.0 == "/openapi.json" {
            assert_eq!(reply.body, OPENAPI);
        }
        let method = if reply.status == 405 {
            "other methods".to_owned()
        } else {
            key.1
        };
        produced.insert((key.0, method, reply.status));
    }
    assert_eq!(
        produced, documented,
        "left: produced by real requests, right: documented"
    );
}
