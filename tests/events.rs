//! Every sample event in events/ goes through the Lambda handler in-process and gets the
//! status, headers and body its name promises. `scripts/make_events.py` writes them (the
//! `predict-*` ones from kitten.jpg, expecting efficientnet_lite0's answer).

mod common;

fn events() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let mut events: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    events.sort();
    assert!(
        events.iter().any(|(n, _)| n.starts_with("predict-")),
        "no predict-*.json in events/: run `python3 scripts/make_events.py ../shared/samples/kitten.jpg`"
    );
    events
}

#[tokio::test]
async fn every_event_gets_the_reply_its_name_promises() {
    let router = common::router(common::app_with_model(common::efficientnet()));
    for (name, json) in events() {
        let request =
            lambda_http::request::from_str(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
        let reply = common::call_lambda(&router, request).await;
        let (status, body) = common::event_expectation(&name);
        assert_eq!(reply.status, status, "{name}: {}", reply.body);
        assert_eq!(reply.header("content-type"), "application/json", "{name}");
        let text = reply.body;
        match body {
            Some(want) => assert_eq!(text, want, "{name}"),
            None => {
                let json: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert!(
                    json["error"].as_str().is_some_and(|e| !e.is_empty()),
                    "{name}: {text}"
                );
            }
        }
    }
}

#[tokio::test]
async fn rest_api_stage_prefix_reaches_the_route() {
    let router = common::router(common::app_with_model(common::efficientnet()));
    let json = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events/get-root-apigw-rest.json"),
    )
    .unwrap();
    let request = lambda_http::request::from_str(&json).unwrap();
    assert!(
        request.uri().path().starts_with("/Prod"),
        "lambda_http keeps the stage: {}",
        request.uri()
    );
    assert_eq!(common::call_lambda(&router, request).await.status, 200);
}

#[tokio::test]
async fn the_lambda_request_id_is_the_reply_request_id() {
    let router = common::router(common::app_with_model(common::efficientnet()));
    let json = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events/get-root-function-url.json"),
    )
    .unwrap();
    let mut request = lambda_http::request::from_str(&json).unwrap();
    let mut context = lambda_http::Context::default();
    context.request_id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd".into();
    request.extensions_mut().insert(context);
    let reply = common::call_lambda(&router, request).await;
    assert_eq!(
        reply.header("x-request-id"),
        "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
    );
}
