//! Every bad request gets a precise JSON error, and odd but valid images are classified — through
//! the API in-process, the Lambda handler in-process, and `serve` over real HTTP.

mod common;

const BOUNDARY: &str = "XyZboundary42";
const FORM: &str = "multipart/form-data; boundary=XyZboundary42";

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<String>,
    body: Vec<u8>,
    status: u16,
}

fn case(name: &'static str, content_type: Option<&str>, body: Vec<u8>, status: u16) -> Case {
    Case {
        name,
        method: "POST",
        path: "/predict",
        content_type: content_type.map(str::to_owned),
        body,
        status,
    }
}

fn upload(data: &[u8]) -> Vec<u8> {
    common::multipart(BOUNDARY, &[("file", "image.jpg", data)])
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// A PNG whose header claims `width`×`height` pixels, followed by a tiny IDAT.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
        out
    }
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A JPEG whose SOF header is patched to claim `width`×`height` pixels.
fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
    let mut jpeg = fixture("progressive.jpg");
    let sof = jpeg
        .windows(2)
        .position(|w| w[0] == 0xFF && (w[1] == 0xC0 || w[1] == 0xC2))
        .unwrap();
    jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    jpeg
}

fn bad_cases() -> Vec<Case> {
    let kitten = common::sample_bytes("kitten.jpg");
    let png = common::sample_bytes("skimage_chelsea.png");
    let mut many_parts = Vec::new();
    for i in 0..5000 {
        many_parts.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nx\r\n")
                .as_bytes(),
        );
    }
    many_parts.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    let mut bad_utf8 =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"fi").into_bytes();
    bad_utf8.extend_from_slice(b"\xff\xfe\"; filename=\"\xc3\x28.jpg\"\r\n\r\n");
    bad_utf8.extend_from_slice(&kitten[..100]);
    bad_utf8.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let unterminated = upload(&kitten)[..5000].to_vec();
    vec![
        case("empty body, no content type", None, vec![], 415),
        case("empty multipart body", Some(FORM), vec![], 400),
        case("image without content type", None, kitten.clone(), 415),
        case(
            "multipart without boundary",
            Some("multipart/form-data"),
            upload(&kitten),
            400,
        ),
        case(
            "multipart with the wrong boundary",
            Some("multipart/form-data; boundary=other"),
            upload(&kitten),
            400,
        ),
        case("unterminated multipart", Some(FORM), unterminated, 400),
        case(
            "garbage multipart",
            Some(FORM),
            b"\x00\x01garbage\r\n\r\n--".to_vec(),
            400,
        ),
        case("invalid UTF-8 in part headers", Some(FORM), bad_utf8, 400),
        case("thousands of parts", Some(FORM), many_parts, 400),
        case(
            "wrong field name",
            Some(FORM),
            common::multipart(BOUNDARY, &[("image", "k.jpg", &kitten)]),
            400,
        ),
        case("empty file", Some(FORM), upload(b""), 400),
        case("empty raw body", Some("image/jpeg"), vec![], 400),
        case(
            "a text file",
            Some(FORM),
            upload(b"hello, this is text\n"),
            415,
        ),
        case(
            "truncated JPEG",
            Some(FORM),
            upload(&kitten[..kitten.len() / 3]),
            415,
        ),
        case(
            "corrupt JPEG",
            Some(FORM),
            upload(&[&kitten[..600], &[0u8; 3000][..]].concat()),
            415,
        ),
        case(
            "truncated PNG",
            Some(FORM),
            upload(&png[..png.len() / 2]),
            415,
        ),
        case(
            "zero-sized PNG",
            Some(FORM),
            upload(&png_claiming(0, 0)),
            415,
        ),
        case(
            "PNG claiming 50000x50000",
            Some(FORM),
            upload(&png_claiming(50_000, 50_000)),
            413,
        ),
        case(
            "JPEG claiming 50000x50000",
            Some(FORM),
            upload(&jpeg_claiming(50_000, 50_000)),
            413,
        ),
        case(
            "a JSON body",
            Some("application/json"),
            br#"{"file":"kitten.jpg"}"#.to_vec(),
            415,
        ),
        case(
            "form-urlencoded body",
            Some("application/x-www-form-urlencoded"),
            b"file=kitten.jpg".to_vec(),
            415,
        ),
        case("bad topk", Some(FORM), upload(&kitten), 400).with_path("/predict?topk=0"),
        Case {
            name: "wrong method",
            method: "PUT",
            path: "/predict",
            content_type: None,
            body: vec![],
            status: 405,
        },
        Case {
            name: "POST to /",
            method: "POST",
            path: "/",
            content_type: None,
            body: vec![],
            status: 405,
        },
        Case {
            name: "unknown route",
            method: "GET",
            path: "/predict/extra",
            content_type: None,
            body: vec![],
            status: 404,
        },
    ]
}

impl Case {
    fn with_path(mut self, path: &'static str) -> Case {
        self.path = path;
        self
    }
}

fn odd_but_valid_cases() -> Vec<Case> {
    let kitten = common::sample_bytes("kitten.jpg");
    let mut cases: Vec<Case> = [
        "cmyk.jpg",
        "palette.png",
        "rgba.png",
        "gray_alpha.png",
        "gray16.png",
        "rgb16.png",
        "progressive.jpg",
        "wide.png",
        "tall.jpg",
        "one_pixel.bmp",
        "tiny.webp",
        "tiny.tiff",
        "animated.gif",
    ]
    .into_iter()
    .map(|name| case(name, Some(FORM), upload(&fixture(name)), 200))
    .collect();
    cases.push(case(
        "JPEG declared as PNG",
        Some(FORM),
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cat.png\"\r\nContent-Type: image/png\r\n\r\n")
            .into_bytes()
            .into_iter()
            .chain(kitten.iter().copied())
            .chain(format!("\r\n--{BOUNDARY}--\r\n").into_bytes())
            .collect(),
        200,
    ));
    cases.push(case(
        "hostile file name",
        Some(FORM),
        common::multipart(
            BOUNDARY,
            &[("file", "../../etc/passwd\\'; rm -rf / <script>", &kitten)],
        ),
        200,
    ));
    cases.push(case(
        "extra fields around the file",
        Some(FORM),
        common::multipart(
            BOUNDARY,
            &[
                ("a", "a", b"1"),
                ("file", "k.jpg", &kitten),
                ("b", "b", b"2"),
            ],
        ),
        200,
    ));
    cases.push(case(
        "raw image/jpeg body",
        Some("image/jpeg"),
        kitten.clone(),
        200,
    ));
    cases
}

fn assert_reply(edge: &str, case: &Case, status: u16, body: &str) {
    assert_eq!(status, case.status, "{edge}: {}: {body}", case.name);
    let json: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{edge}: {}: not JSON ({e}): {body}", case.name));
    if case.status == 200 {
        assert!(
            json["class_id"].is_u64() && json["class_name"].is_string(),
            "{edge}: {}: {body}",
            case.name
        );
    } else {
        let error = json["error"].as_str().unwrap_or_default();
        assert!(
            error.len() > 20,
            "{edge}: {}: unhelpful error {body}",
            case.name
        );
    }
}

async fn check_in_process(router: &axum::Router, case: &Case) {
    let headers: Vec<(&str, &str)> = case
        .content_type
        .as_deref()
        .map(|ct| ("content-type", ct))
        .into_iter()
        .collect();
    let reply = common::call(router, case.method, case.path, &headers, case.body.clone()).await;
    assert_eq!(
        reply.header("content-type"),
        "application/json",
        "{}",
        case.name
    );
    assert_reply("api", case, reply.status, &reply.body);

    let mut builder = http::Request::builder()
        .method(case.method)
        .uri(format!("https://example.com{}", case.path));
    if let Some(ct) = &case.content_type {
        builder = builder.header("content-type", ct);
    }
    let event = builder
        .body(lambda_http::Body::Binary(case.body.clone()))
        .unwrap();
    let reply = common::call_lambda(router, event).await;
    assert_eq!(
        reply.header("content-type"),
        "application/json",
        "{}",
        case.name
    );
    assert_reply("lambda", case, reply.status, &reply.body);
}

#[tokio::test]
async fn bad_requests_get_precise_json_errors_in_process() {
    let router = common::router(common::app_with_model(common::efficientnet()));
    for case in bad_cases() {
        check_in_process(&router, &case).await;
    }
}

#[tokio::test]
async fn odd_but_valid_images_are_classified_in_process() {
    let router = common::router(common::app_with_model(common::efficientnet()));
    for case in odd_but_valid_cases() {
        check_in_process(&router, &case).await;
    }
}

#[test]
fn every_case_over_http_with_serve() {
    let server = common::serve(&common::efficientnet(), &[]);
    let client = reqwest::blocking::Client::new();
    for case in bad_cases().into_iter().chain(odd_but_valid_cases()) {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let mut request = client
            .request(method, format!("{}{}", server.base, case.path))
            .body(case.body.clone());
        if let Some(ct) = &case.content_type {
            request = request.header("content-type", ct);
        }
        let response = request
            .send()
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let status = response.status().as_u16();
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{}",
            case.name
        );
        assert_reply("serve", &case, status, &response.text().unwrap());
    }
}

#[tokio::test]
async fn corrupt_model_is_a_500_naming_the_file_and_get_still_answers() {
    let dir = std::env::temp_dir().join(format!("densenet-lambda-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("corrupt.onnx");
    std::fs::write(&path, b"this is not an onnx protobuf").unwrap();
    let router = common::router(common::app_with_model(path.clone()));
    let kitten = common::sample_bytes("kitten.jpg");
    let headers = [("content-type", "image/jpeg")];
    for _ in 0..2 {
        let reply = common::call(&router, "POST", "/predict", &headers, kitten.clone()).await;
        assert_eq!(reply.status, 500, "{}", reply.body);
        assert!(
            reply.body.contains("corrupt.onnx") && reply.body.contains("MODEL_PATH"),
            "{}",
            reply.body
        );
    }
    assert_eq!(
        common::call(&router, "GET", "/", &[], vec![]).await.status,
        200
    );
    std::fs::remove_dir_all(dir).unwrap();
}
