//! The real Lambda runtime loop under cargo-lambda's emulator (`cargo lambda watch`): every
//! sample event through `cargo lambda invoke --data-file`, and the tutorial's multipart curl
//! through the emulated Function URL. Needs `cargo lambda` (`pip install cargo-lambda`).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::emulator::{lambda_emulator, root, Emulator, FUNCTION};
use reqwest::blocking::{multipart, Client};

fn invoke(emulator: &Emulator, event: &Path) -> serde_json::Value {
    let output = Command::new("cargo")
        .args([
            "lambda",
            "invoke",
            "-A",
            "127.0.0.1",
            "-P",
            &emulator.port.to_string(),
            "--data-file",
        ])
        .arg(event)
        .arg(FUNCTION)
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}: {stdout} {}",
        event.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{}: {e}: {stdout}", event.display()))
}

#[test]
fn runtime_loop_answers_every_event_and_the_function_url() {
    let efficientnet = common::efficientnet();
    let emulator = lambda_emulator(&[("MODEL_PATH", efficientnet.to_str().unwrap())]);
    let mut names: Vec<_> = std::fs::read_dir(root().join("events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    assert!(names.len() >= 5, "run scripts/make_events.py first");
    for path in &names {
        let name = path.file_name().unwrap().to_string_lossy();
        let response = invoke(&emulator, path);
        let (status, body) = common::event_expectation(&name);
        assert_eq!(response["statusCode"], status, "{name}: {response}");
        let text = response["body"].as_str().unwrap_or_default();
        match body {
            Some(want) => assert_eq!(text, want, "{name}"),
            None => assert!(text.contains("\"error\":"), "{name}: {text}"),
        }
    }

    // The tutorial's curl, through the emulated Function URL.
    let base = emulator.function_url();
    let client = Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let form = multipart::Form::new()
        .file("file", common::sample("kitten.jpg"))
        .unwrap();
    let response = client
        .post(format!("{base}/predict"))
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.text().unwrap(),
        "{\"class_id\":282,\"class_name\":\"tiger_cat\"}\n"
    );
    let greeting = client
        .get(format!("{base}/"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(
        greeting,
        "{\"msg\":\"Try POSTing to the /predict endpoint with an RGB image attachment\"}\n"
    );
}
