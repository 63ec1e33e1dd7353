//! `densenet-lambda serve` over real HTTP: the tutorial's curl gets the seed app's exact bytes.

mod common;

use std::io::Read;
use std::time::Duration;

use reqwest::blocking::{multipart, Client};

fn start(model: &std::path::Path) -> common::Serve {
    common::serve(model, &[("MAX_BODY_BYTES", "1000000")])
}

fn body(response: reqwest::blocking::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (status, content_type, response.text().unwrap())
}

/// Sends raw bytes on a fresh connection and reads the reply until the server closes it.
fn raw_exchange(server: &common::Serve, request: &str) -> (u16, String) {
    use std::io::Write;
    let mut stream =
        std::net::TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, reply)
}

#[test]
fn tutorial_requests_get_the_seed_apps_bytes() {
    let server = start(&common::efficientnet());
    let client = Client::new();

    let (status, ctype, text) = body(client.get(&server.base).send().unwrap());
    assert_eq!((status, ctype.as_str()), (200, "application/json"));
    assert_eq!(
        text,
        "{\"msg\":\"Try POSTing to the /predict endpoint with an RGB image attachment\"}\n"
    );

    // curl -X POST -H "Content-Type: multipart/form-data" …/predict -F "file=@kitten.jpg"
    let form = multipart::Form::new()
        .file("file", common::sample("kitten.jpg"))
        .unwrap();
    let (status, ctype, text) = body(
        client
            .post(format!("{}/predict", server.base))
            .multipart(form)
            .send()
            .unwrap(),
    );
    assert_eq!((status, ctype.as_str()), (200, "application/json"));
    assert_eq!(text, "{\"class_id\":282,\"class_name\":\"tiger_cat\"}\n");
}

#[test]
fn errors_are_json_with_the_right_status() {
    let server = start(&common::efficientnet());
    let client = Client::new();
    let url = format!("{}/predict", server.base);
    let error = |r: reqwest::blocking::Response| {
        let (status, ctype, text) = body(r);
        assert_eq!(ctype, "application/json", "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{text}"
        );
        status
    };

    // Wrong field name.
    let form = multipart::Form::new().part(
        "image",
        multipart::Part::bytes(common::sample_bytes("kitten.jpg")),
    );
    assert_eq!(
        error(client.post(&url).multipart(form).send().unwrap()),
        400
    );
    // Not an image.
    let form = multipart::Form::new().part(
        "file",
        multipart::Part::bytes(b"hello, world".to_vec()).file_name("a.jpg"),
    );
    assert_eq!(
        error(client.post(&url).multipart(form).send().unwrap()),
        415
    );
    // JSON body.
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"file\":1}")
        .send()
        .unwrap();
    assert_eq!(error(r), 415);
    // Too large (the server was started with MAX_BODY_BYTES=1000000): refused from the
    // Content-Length alone, before a byte of the body is sent.
    let (status, text) = raw_exchange(
        &server,
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 2000000\r\n\r\n",
    );
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("{\"error\":"), "{text}");
    // Wrong method, unknown route.
    assert_eq!(error(client.get(&url).send().unwrap()), 405);
    assert_eq!(
        error(client.get(format!("{}/nope", server.base)).send().unwrap()),
        404
    );
    // And the server still answers.
    let mut r = client.get(&server.base).send().unwrap();
    let mut text = String::new();
    r.read_to_string(&mut text).unwrap();
    assert!(text.contains("Try POSTing"));
}

#[test]
fn missing_model_is_a_500_naming_the_file_and_get_still_answers() {
    let server = start(std::path::Path::new("/nonexistent/densenet121.onnx"));
    let client = Client::new();
    let form = multipart::Form::new()
        .file("file", common::sample("kitten.jpg"))
        .unwrap();
    let (status, _, text) = body(
        client
            .post(format!("{}/predict", server.base))
            .multipart(form)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 500);
    assert!(
        text.contains("/nonexistent/densenet121.onnx") && text.contains("export_densenet121.py"),
        "{text}"
    );
    assert_eq!(
        client.get(&server.base).send().unwrap().status().as_u16(),
        200
    );
}

/// The tutorial's upload of kitten.jpg; the reply's status.
fn post_kitten(server: &common::Serve) -> u16 {
    let form = multipart::Form::new()
        .file("file", common::sample("kitten.jpg"))
        .unwrap();
    Client::new()
        .post(format!("{}/predict", server.base))
        .multipart(form)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// `GET /model`'s `loaded` flag, polled until it is `want` or `wait` has passed.
fn loaded_within(server: &common::Serve, want: bool, wait: Duration) -> bool {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let text = reqwest::blocking::get(format!("{}/model", server.base))
            .unwrap()
            .text()
            .unwrap();
        let info: serde_json::Value = serde_json::from_str(&text).unwrap();
        if info["loaded"] == want || std::time::Instant::now() >= deadline {
            return info["loaded"] == want;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_model_preloads_in_the_background_unless_told_not_to() {
    // Default: the load starts at start-up, with no /predict, while GET / answers at once.
    let server = start(&common::efficientnet());
    assert_eq!(reqwest::blocking::get(&server.base).unwrap().status(), 200);
    assert!(loaded_within(&server, true, Duration::from_secs(60)));
    drop(server);

    // PRELOAD_MODEL=0: nothing loads until the first /predict.
    let lazy = common::serve(&common::efficientnet(), &[("PRELOAD_MODEL", "0")]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(loaded_within(&lazy, false, Duration::ZERO));
    assert_eq!(post_kitten(&lazy), 200);
    assert!(loaded_within(&lazy, true, Duration::ZERO));
}

#[test]
fn a_failed_preload_is_retried_by_predict_and_get_still_answers() {
    let dir = std::env::temp_dir().join(format!("preload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("late.onnx");
    let _ = std::fs::remove_file(&path);
    // The file appears only after the preload has failed on it.
    let server = start(&path);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(reqwest::blocking::get(&server.base).unwrap().status(), 200);
    assert!(loaded_within(&server, false, Duration::ZERO));
    std::fs::copy(common::efficientnet(), &path).unwrap();
    assert_eq!(post_kitten(&server), 200);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends `signal` to a child process.
fn signal(child: &std::process::Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sigterm_and_ctrl_c_answer_the_request_in_flight_then_exit_0() {
    use std::io::Write;
    for sig in ["TERM", "INT"] {
        let mut server = start(&common::efficientnet());
        assert!(loaded_within(&server, true, Duration::from_secs(60)));
        let kitten = common::sample_bytes("kitten.jpg");
        let mut stream =
            std::net::TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            kitten.len()
        )
        .unwrap();
        // Half the body, then the signal: the request is in flight when it arrives.
        let half = kitten.len() / 2;
        stream.write_all(&kitten[..half]).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        signal(&server.child, sig);
        std::thread::sleep(Duration::from_millis(300));
        stream.write_all(&kitten[half..]).unwrap();
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        assert!(reply.starts_with("HTTP/1.1 200"), "SIG{sig}: {reply}");
        assert!(
            reply.ends_with("{\"class_id\":282,\"class_name\":\"tiger_cat\"}\n"),
            "SIG{sig}: {reply}"
        );
        let status = server.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "SIG{sig}: {status:?}");
    }
}

/// Writes a whole request before reading anything (as Python's urllib does), then reads the
/// reply until the server closes the connection or stops sending.
fn write_then_read(server: &common::Serve, head: &str, body: &[u8], chunked: bool) -> String {
    use std::io::Write;
    let mut stream =
        std::net::TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    if chunked {
        for chunk in body.chunks(64 * 1024) {
            write!(stream, "{:x}\r\n", chunk.len()).unwrap();
            stream.write_all(chunk).unwrap();
            stream.write_all(b"\r\n").unwrap();
        }
        stream.write_all(b"0\r\n\r\n").unwrap();
    } else {
        stream.write_all(body).unwrap();
    }
    let mut reply = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buffer) {
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buffer[..n]);
        if reply.ends_with(b"}\n") {
            break;
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

#[test]
fn an_oversized_body_written_before_reading_gets_the_413_json() {
    // The default limit (6 MiB); the client writes 12 MB before it reads.
    let server = common::serve(&common::efficientnet(), &[]);
    let body = vec![0x5a; 12_000_000];
    let head = format!(
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let reply = write_then_read(&server, &head, &body, false);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(
        reply.contains("{\"error\":\"the request body is larger than"),
        "{reply}"
    );
    // The same without a Content-Length: the limit is found while reading.
    let head = "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n";
    let reply = write_then_read(&server, head, &body, true);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(
        reply.contains("{\"error\":\"the request body is larger than"),
        "{reply}"
    );
    // And the server still answers.
    assert_eq!(post_kitten(&server), 200);
}

#[test]
fn help_and_version_say_what_to_type() {
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_densenet-lambda"))
            .args(args)
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
    for command in ["serve", "classify", "convert", "AWS_LAMBDA_RUNTIME_API"] {
        assert!(out.contains(command), "--help lacks {command}: {out}");
    }
    let (code, out, _) = run(&["--version"]);
    assert_eq!(
        (code, out.trim()),
        (
            Some(0),
            concat!("densenet-lambda ", env!("CARGO_PKG_VERSION"))
        )
    );
    let (code, out, _) = run(&["serve", "--help"]);
    assert_eq!(code, Some(0));
    for variable in [
        "PORT",
        "MODEL_PATH",
        "MODEL_THREADS",
        "MAX_BODY_BYTES",
        "CORS_ALLOW_ORIGINS",
        "UI_ENABLED",
        "DOCS_ENABLED",
    ] {
        assert!(
            out.contains(&format!("[env: {variable}")),
            "serve --help lacks {variable}: {out}"
        );
    }
    let (code, out, _) = run(&["classify", "--help"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("--topk") && out.contains("[env: MODEL_PATH"),
        "{out}"
    );
    // Mistakes are exit 2 with what to type instead.
    let (code, _, err) = run(&["serve", "--prot", "8080"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--port") && err.contains("--help"), "{err}");
    let (code, _, err) = run(&["clasify", "x.jpg"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("classify"), "{err}");
    let (code, _, err) = run(&["classify"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("<FILE>"), "{err}");
    let (code, _, err) = run(&[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("densenet-lambda serve"), "{err}");
}
