//! The opt-in pages in a real browser: headless Chromium, driven through chromedriver over the
//! W3C WebDriver HTTP protocol. The upload page at `GET /ui` uploads the kitten and sees the
//! reference top-5 drawn as bars, and a text file shows an error and no rows; the API
//! documentation at `GET /docs` (Swagger UI) renders every operation of `/openapi.json`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian: `apt-get install -y chromium
//! chromium-driver`); without them the test fails and says so.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::blocking::Client;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long the page may take to show a result (the first request also loads the model).
const RESULT_TIMEOUT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh folder under the target directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("ui_browser-{label}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `url` with GET until it answers, or panics after `timeout`.
fn wait_until_up(url: &str, timeout: Duration, what: &str, process: &mut Process) {
    let client = Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let deadline = Instant::now() + timeout;
    while client.get(url).send().is_err() {
        if let Ok(Some(status)) = process.0.try_wait() {
            panic!("{what} exited before answering at {url}: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not answer at {url}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `densenet-lambda serve` with the real-weights model and `setting` (a page) enabled.
fn start_server(setting: &str) -> (Process, String) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_densenet-lambda"))
        .args(["serve", "--port", &port.to_string()])
        .env(setting, "1")
        .env("MODEL_PATH", common::efficientnet())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Process(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base, Duration::from_secs(30), "serve", &mut server);
    (server, base)
}

/// Fails (never skips) when the browser is not installed.
fn require_browser() {
    for (path, what) in [(CHROMIUM, "Chromium"), (CHROMEDRIVER, "chromedriver")] {
        assert!(
            Path::new(path).is_file(),
            "{what} is missing ({path}); this test drives a real browser: \
             install it with `apt-get install -y chromium chromium-driver`"
        );
    }
}

fn start_chromedriver() -> (Process, String) {
    require_browser();
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {CHROMEDRIVER}: {e} \
                 (install it with `apt-get install -y chromium chromium-driver`)"
            )
        });
    let mut driver = Process(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(
        &format!("{base}/status"),
        Duration::from_secs(30),
        "chromedriver",
        &mut driver,
    );
    (driver, base)
}

/// One WebDriver session; deleted (closing the browser) when dropped.
struct Session {
    client: Client,
    url: String,
    closed: bool,
}

impl Session {
    fn new(driver: &str, user_data_dir: &Path) -> Session {
        let client = Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .unwrap();
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--disable-quic",
                            "--no-first-run",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            "--window-size=900,900",
                            format!("--user-data-dir={}", user_data_dir.display()),
                        ],
                    },
                },
            },
        });
        let reply = send(
            &client,
            "POST",
            &format!("{driver}/session"),
            Some(capabilities),
        );
        let id = reply["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {reply}"));
        Session {
            url: format!("{driver}/session/{id}"),
            client,
            closed: false,
        }
    }

    fn get(&self, path: &str) -> Value {
        send(&self.client, "GET", &format!("{}{path}", self.url), None)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        send(
            &self.client,
            "POST",
            &format!("{}{path}", self.url),
            Some(body),
        )
    }

    fn navigate(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    fn find_all(&self, css: &str) -> Vec<String> {
        self.post(
            "/elements",
            json!({ "using": "css selector", "value": css }),
        )
        .as_array()
        .unwrap_or_else(|| panic!("elements {css}: not a list"))
        .iter()
        .map(element_id)
        .collect()
    }

    fn find(&self, css: &str) -> String {
        element_id(&self.post("/element", json!({ "using": "css selector", "value": css })))
    }

    /// Finds `css` inside the element `parent`.
    fn find_in(&self, parent: &str, css: &str) -> String {
        element_id(&self.post(
            &format!("/element/{parent}/element"),
            json!({ "using": "css selector", "value": css }),
        ))
    }

    fn text(&self, element: &str) -> String {
        self.get(&format!("/element/{element}/text"))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn attribute(&self, element: &str, name: &str) -> String {
        self.get(&format!("/element/{element}/attribute/{name}"))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Chooses `file` in the page's file input and submits the form.
    fn upload(&self, file: &Path) {
        // chromedriver refuses paths with `..` in them ("path is not canonical").
        let file = file
            .canonicalize()
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let input = self.find("#file");
        self.post(
            &format!("/element/{input}/value"),
            json!({ "text": file.to_str().unwrap() }),
        );
        let submit = self.find("#submit");
        self.post(&format!("/element/{submit}/click"), json!({}));
    }

    /// Saves a PNG screenshot of the page.
    fn screenshot(&self, to: &Path) {
        let encoded = self.get("/screenshot");
        let png = base64_decode(encoded.as_str().expect("screenshot is a string"));
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        std::fs::write(to, png).unwrap();
    }
}

impl Session {
    /// Deletes the session (closing the browser), checking that chromedriver agreed.
    fn close(mut self) {
        self.closed = true;
        send(&self.client, "DELETE", &self.url, None);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.client.delete(&self.url).send();
        }
    }
}

/// Sends one WebDriver command and returns its `value`, panicking on a WebDriver error.
fn send(client: &Client, method: &str, url: &str, body: Option<Value>) -> Value {
    let request = match method {
        "GET" => client.get(url),
        "POST" => client
            .post(url)
            .header("content-type", "application/json")
            .body(serde_json::to_string(&body.unwrap_or_else(|| json!({}))).unwrap()),
        "DELETE" => client.delete(url),
        _ => unreachable!(),
    };
    let response = request
        .send()
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status();
    let text = response.text().unwrap();
    let reply: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {url}: {status}, not JSON ({e}): {text}"));
    assert!(
        status.is_success(),
        "{method} {url}: {status}: {}",
        reply["value"]
    );
    reply["value"].clone()
}

fn element_id(reference: &Value) -> String {
    reference[ELEMENT]
        .as_str()
        .unwrap_or_else(|| panic!("not an element reference: {reference}"))
        .to_owned()
}

/// Standard base64 (with padding), enough for WebDriver screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a') as u32 + 26,
            b'0'..=b'9' => (c - b'0') as u32 + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {:?}", c as char),
        }
    };
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c) << (18 - 6 * i);
        }
        let produced = chunk.len() * 6 / 8;
        out.extend_from_slice(&n.to_be_bytes()[1..1 + produced]);
    }
    out
}

/// Polls until `ready` returns `Some`, or panics with `what` after `timeout`.
fn wait_for<T>(timeout: Duration, what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn upload_page_classifies_the_kitten_and_reports_errors_in_a_browser() {
    let kitten = common::sample("kitten.jpg");
    let expected: Vec<String> = common::reference("kitten.jpg")["efficientnet_lite0"]["top5"]
        .as_array()
        .expect("reference top5")
        .iter()
        .map(|entry| entry["class_name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(expected[..3], ["tiger_cat", "tabby", "Egyptian_cat"]);

    require_browser();
    let (_server, base) = start_server("UI_ENABLED");
    let (_driver, driver_url) = start_chromedriver();
    let profile = TempDir::new("profile");
    let session = Session::new(&driver_url, &profile.0);
    let page = format!("{base}/ui");

    // The kitten: five rows, the reference order, the first bar about 54% wide.
    session.navigate(&page);
    session.upload(&kitten);
    let rows = wait_for(RESULT_TIMEOUT, "the kitten's result rows", || {
        let rows = session.find_all("div.row.result");
        if !rows.is_empty() {
            return Some(rows);
        }
        let error = session.text(&session.find("#error"));
        assert!(
            error.is_empty(),
            "the page showed an error for the kitten: {error}"
        );
        None
    });
    let names: Vec<String> = rows
        .iter()
        .map(|row| session.text(&session.find_in(row, "span.name")))
        .collect();
    assert_eq!(names.len(), 5, "rows: {names:?}");
    assert_eq!(
        names[..3],
        ["tiger_cat", "tabby", "Egyptian_cat"],
        "rows: {names:?}"
    );
    assert_eq!(names, expected, "rows against the reference top-5");

    let style = session.attribute(&session.find_in(&rows[0], ".bar"), "style");
    let width: f64 = style
        .split(';')
        .filter_map(|declaration| declaration.split_once(':'))
        .find(|(property, _)| property.trim() == "width")
        .and_then(|(_, value)| value.trim().strip_suffix('%'))
        .and_then(|number| number.trim().parse().ok())
        .unwrap_or_else(|| panic!("no percentage width in the first bar's style: {style:?}"));
    assert!(
        (40.0..=70.0).contains(&width),
        "first bar is {width}% wide, expected about 54%"
    );
    let first_row = session.text(&rows[0]);
    assert!(
        first_row.contains("tiger_cat") && first_row.contains('%'),
        "first row reads {first_row:?}"
    );
    assert!(
        session.text(&session.find("#error")).is_empty(),
        "error shown next to results"
    );

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("ui_browser.png");
    session.screenshot(&screenshot);

    // A text file: an error message and no rows.
    let scratch = TempDir::new("upload");
    let text_file = scratch.0.join("not_an_image.txt");
    std::fs::write(&text_file, "hello, this is not an image\n").unwrap();
    session.navigate(&page);
    session.upload(&text_file);
    let error = wait_for(RESULT_TIMEOUT, "the text file's error", || {
        let error = session.text(&session.find("#error"));
        (!error.trim().is_empty()).then_some(error)
    });
    let rows = session.find_all("div.result");
    assert!(
        rows.is_empty(),
        "{} result rows shown for a text file (error: {error})",
        rows.len()
    );
    assert_eq!(
        session.text(&session.find("#results")),
        "",
        "results area after the error"
    );

    // End the session explicitly (closing the browser) before chromedriver and the server stop.
    session.close();
}

#[test]
fn docs_page_renders_every_operation_in_a_browser() {
    require_browser();
    let (_server, base) = start_server("DOCS_ENABLED");
    let document: Value = serde_json::from_str(
        &Client::new()
            .get(format!("{base}/openapi.json"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
    )
    .unwrap();
    let mut expected: Vec<String> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    expected.sort();
    assert!(
        expected.contains(&"POST /predict".to_owned()),
        "{expected:?}"
    );

    let (_driver, driver_url) = start_chromedriver();
    let profile = TempDir::new("docs-profile");
    let session = Session::new(&driver_url, &profile.0);
    session.navigate(&format!("{base}/docs"));
    let mut shown = wait_for(RESULT_TIMEOUT, "Swagger UI's operations", || {
        let blocks = session.find_all(".opblock-summary");
        (blocks.len() >= expected.len()).then_some(blocks)
    })
    .iter()
    .map(|block| {
        let method = session.text(&session.find_in(block, ".opblock-summary-method"));
        let path = session.text(&session.find_in(block, ".opblock-summary-path"));
        format!("{method} {}", path.trim_end_matches('\u{200b}'))
    })
    .collect::<Vec<_>>();
    shown.sort();
    assert_eq!(
        shown, expected,
        "operations shown by /docs against /openapi.json"
    );
    session.close();
}
