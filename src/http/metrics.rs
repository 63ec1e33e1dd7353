//! CloudWatch metrics with no extra service: one Embedded Metric Format (EMF) record per
//! prediction, written as a JSON line on stdout, where Lambda's log capture hands it to
//! CloudWatch, which turns it into metrics. Off by default (`CLOUDWATCH_METRICS=1` turns it on);
//! off, stdout carries nothing but the log lines.
//!
//! The record's metrics are the per-phase milliseconds of the prediction's log line and a
//! cold-start flag; its class and request id travel as properties (searchable in Logs Insights,
//! not metric dimensions, whose cardinality CloudWatch bills).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::classifier::Prediction;

/// The namespace the metrics land in unless `CLOUDWATCH_METRICS_NAMESPACE` says otherwise.
pub const DEFAULT_NAMESPACE: &str = "densenet-lambda";

/// Where EMF records go, if anywhere.
#[derive(Debug)]
pub struct Metrics {
    namespace: Option<String>,
    function_name: String,
    first: AtomicBool,
}

impl Metrics {
    /// No records at all (the default).
    pub fn off() -> Metrics {
        Metrics::new(None)
    }

    /// Records in `namespace` (or none when `None`), dimensioned by the function's name
    /// (`AWS_LAMBDA_FUNCTION_NAME`, which Lambda sets; `local` elsewhere).
    pub fn new(namespace: Option<String>) -> Metrics {
        Metrics {
            namespace,
            function_name: std::env::var("AWS_LAMBDA_FUNCTION_NAME")
                .unwrap_or_else(|_| "local".into()),
            first: AtomicBool::new(true),
        }
    }

    /// Writes the record of one prediction to stdout, if on. The first prediction of the
    /// process is flagged as the cold start.
    pub fn record(&self, prediction: &Prediction, request_id: Option<&str>) {
        let Some(namespace) = &self.namespace else {
            return;
        };
        let cold_start = self.first.swap(false, Ordering::Relaxed);
        let record = emf_record(
            namespace,
            &self.function_name,
            prediction,
            cold_start,
            request_id,
            now_ms(),
        );
        // One write of one line: Lambda captures stdout line by line.
        let mut line = record.to_string();
        line.push('\n');
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

/// Milliseconds since the Unix epoch, as EMF's `Timestamp` wants them.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The EMF record of one prediction: `_aws.CloudWatchMetrics` declares the namespace, the
/// dimension set and each metric's unit; the values sit at the top level beside the properties.
pub fn emf_record(
    namespace: &str,
    function_name: &str,
    prediction: &Prediction,
    cold_start: bool,
    request_id: Option<&str>,
    timestamp_ms: u64,
) -> Value {
    let ms = |d: std::time::Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let t = &prediction.timings;
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["FunctionName"]],
                "Metrics": [
                    {"Name": "DecodeMs", "Unit": "Milliseconds"},
                    {"Name": "PreprocessMs", "Unit": "Milliseconds"},
                    {"Name": "InferenceMs", "Unit": "Milliseconds"},
                    {"Name": "ModelLoadMs", "Unit": "Milliseconds"},
                    {"Name": "ColdStart", "Unit": "Count"},
                ],
            }],
        },
        "FunctionName": function_name,
        "DecodeMs": ms(t.decode),
        "PreprocessMs": ms(t.preprocess),
        "InferenceMs": ms(t.inference),
        "ModelLoadMs": ms(t.model_load),
        "ColdStart": u8::from(cold_start),
        "class_id": prediction.class_id,
        "class_name": prediction.class_name,
        "request_id": request_id,
        "width": prediction.source_size.0,
        "height": prediction.source_size.1,
    })
}
