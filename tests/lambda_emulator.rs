//! The real Lambda runtime loop under cargo-lambda's emulator (`cargo lambda watch`): every
//! sample event through `cargo lambda invoke --data-file`, and the tutorial's multipart curl
//! through the emulated Function URL. Needs `cargo lambda` (`pip install cargo-lambda`).

mod common;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::{multipart, Client};

/// `cargo lambda watch` and the function it runs, inside a PID namespace of their own
/// (`unshare --pid --kill-child`): killing `unshare` ends every process in it, and nothing the
/// emulator signals on shutdown can reach processes outside.
struct Emulator {
    child: Child,
    port: u16,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn start() -> Emulator {
    let version = Command::new("cargo").args(["lambda", "--version"]).output();
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "cargo-lambda is not installed: `pip install cargo-lambda` (the README's test command does it)"
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            "cargo",
            "lambda",
            "watch",
            "--ignore-changes",
        ])
        .args(["-A", "127.0.0.1", "-P", &port.to_string()])
        .env("MODEL_PATH", common::efficientnet())
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let emulator = Emulator { child, port };
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch did not open port {port}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    emulator
}

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
        .arg("densenet-lambda")
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
    let emulator = start();
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
    let base = format!(
        "http://127.0.0.1:{}/lambda-url/densenet-lambda",
        emulator.port
    );
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
