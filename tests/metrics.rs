//! CloudWatch metrics: with `CLOUDWATCH_METRICS=1` each prediction writes one Embedded Metric
//! Format record on stdout that satisfies the format's schema (tests/api/emf.schema.json) and
//! names only members it carries; off (the default), stdout stays empty.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use densenet_lambda::classifier::{Prediction, Timings};
use densenet_lambda::http::metrics::emf_record;
use serde_json::Value;

/// The EMF specification's structure as a JSON Schema.
fn emf_schema() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/emf.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Checks a record against the EMF schema and the rule the schema cannot state: every metric
/// and dimension it declares is a top-level member (a number for a metric, a string for a
/// dimension).
fn assert_valid_emf(record: &Value) {
    if let Err(error) = jsonschema::validate(&emf_schema(), record) {
        panic!("not an EMF record: {error}: {record}");
    }
    for directive in record["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(
                record[name].is_number(),
                "metric {name} has no value: {record}"
            );
        }
        for set in directive["Dimensions"].as_array().unwrap() {
            for dimension in set.as_array().unwrap() {
                let name = dimension.as_str().unwrap();
                assert!(
                    record[name].is_string(),
                    "dimension {name} has no value: {record}"
                );
            }
        }
    }
}

#[test]
fn a_record_satisfies_the_emf_schema() {
    let prediction = Prediction {
        class_id: 285,
        class_name: "Egyptian_cat".into(),
        logits: vec![0.0; 1000],
        source_size: (640, 480),
        timings: Timings {
            decode: Duration::from_micros(4_012),
            preprocess: Duration::from_micros(3_100),
            model_load: Duration::ZERO,
            inference: Duration::from_micros(51_250),
        },
    };
    let record = emf_record(
        "densenet-lambda",
        "my-function",
        &prediction,
        true,
        Some("abc"),
        1_795_608_000_000,
    );
    assert_valid_emf(&record);
    assert_eq!(
        record["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "densenet-lambda"
    );
    assert_eq!(record["InferenceMs"], 51.25);
    assert_eq!(record["ColdStart"], 1);
    assert_eq!(record["class_name"], "Egyptian_cat");
    // A schema that can fail: a unit CloudWatch does not know is refused.
    let mut wrong = record.clone();
    wrong["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = "Millis".into();
    assert!(jsonschema::validate(&emf_schema(), &wrong).is_err());
}

/// Starts `serve` with its stdout captured line by line; returns the process and the lines it
/// prints.
fn serve_capturing_stdout(env: &[(&str, &str)]) -> (common::Serve, mpsc::Receiver<String>) {
    let mut server = common::serve_with(|command| {
        command
            .env("MODEL_PATH", common::efficientnet())
            .env("AWS_LAMBDA_FUNCTION_NAME", "test-function")
            .envs(env.iter().copied())
            .stdout(Stdio::piped());
    });
    let stdout = server.child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    (server, received)
}

fn post_kitten(server: &common::Serve) {
    let status = reqwest::blocking::Client::new()
        .post(format!("{}/predict", server.base))
        .header("content-type", "image/jpeg")
        .header("x-request-id", "req-1")
        .body(common::sample_bytes("kitten.jpg"))
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

#[test]
fn serve_writes_one_record_per_prediction_only_when_asked() {
    let (server, lines) = serve_capturing_stdout(&[("CLOUDWATCH_METRICS", "1")]);
    post_kitten(&server);
    post_kitten(&server);
    let records: Vec<Value> = (0..2)
        .map(|_| {
            let line = lines.recv_timeout(Duration::from_secs(30)).unwrap();
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
        })
        .collect();
    for record in &records {
        assert_valid_emf(record);
        assert_eq!(record["FunctionName"], "test-function");
        assert_eq!(record["class_id"], 282);
        assert_eq!(record["request_id"], "req-1");
    }
    assert_eq!(records[0]["ColdStart"], 1);
    assert_eq!(records[1]["ColdStart"], 0);
    assert!(lines.recv_timeout(Duration::from_millis(500)).is_err());
    drop(server);

    let (server, lines) = serve_capturing_stdout(&[]);
    post_kitten(&server);
    assert!(
        lines.recv_timeout(Duration::from_secs(1)).is_err(),
        "stdout is not empty with metrics off"
    );
}
