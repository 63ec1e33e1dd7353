//! In-process breakdown of one `/predict`: multipart parsing, decode, resize (+crop+normalise),
//! inference, reply, plus the model load that dominates a cold start. Medians over repeated runs,
//! printed with the CPU they ran on (the parts `bench/breakdown.py` cannot see from the server's
//! log: multipart parsing and the reply's serialisation).
//!
//!     cargo bench --bench pipeline [-- --model M.onnx --image I.jpg --iters N --threads T --json]
//!
//! Defaults: ../shared/model/densenet121_untrained_seed0.onnx, ../shared/samples/kitten.jpg,
//! 30 iterations, 1 thread. `--json` ends with one JSON line of the figures (for bench/compare.py).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use densenet_lambda::classifier::{argmax, Prediction, Timings};
use densenet_lambda::http::routes::prediction_reply;
use densenet_lambda::http::upload::{images, BodyKind, UploadLimits};
use densenet_lambda::model::kernels::cpu;
use densenet_lambda::model::{Model, ModelOptions, ModelSource};
use densenet_lambda::preprocess::{preprocess, DecodeOptions};

struct Args {
    model: PathBuf,
    image: PathBuf,
    iters: usize,
    threads: usize,
    json: bool,
}

fn args() -> Args {
    let shared = std::env::var_os("SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let mut args = Args {
        model: shared.join("model/densenet121_untrained_seed0.onnx"),
        image: shared.join("samples/kitten.jpg"),
        iters: 30,
        threads: 1,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--model" => args.model = it.next().expect("--model PATH").into(),
            "--image" => args.image = it.next().expect("--image PATH").into(),
            "--iters" => args.iters = it.next().and_then(|v| v.parse().ok()).expect("--iters N"),
            "--threads" => {
                args.threads = it.next().and_then(|v| v.parse().ok()).expect("--threads N")
            }
            "--json" => args.json = true,
            _ => {} // cargo bench passes --bench
        }
    }
    args
}

fn median(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

fn main() {
    let args = args();
    let bytes = std::fs::read(&args.image).expect("read image");
    let (model, load) = time(|| {
        Model::load(
            &ModelSource::File(args.model.clone()),
            ModelOptions::threads(args.threads),
        )
        .expect("load model")
    });

    let decode_options = DecodeOptions {
        jpeg_dct_scaling: std::env::var("JPEG_DCT_SCALING").as_deref() != Ok("0"),
        ..DecodeOptions::default()
    };
    // The body `curl -F file=@IMAGE` sends, parsed as the server parses it (from memory here).
    let boundary = "------------------------bench0123456789";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"image\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let body = bytes::Bytes::from(body);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let multipart = || {
        let kind = BodyKind::from_content_type(Some(&content_type)).expect("content type");
        let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(body.clone())]);
        let files = runtime
            .block_on(images(kind, stream, UploadLimits::default()))
            .expect("multipart");
        assert_eq!(files[0].len(), bytes.len());
    };
    let (mut decode_t, mut resize_t, mut infer_t, mut reply_t) = (vec![], vec![], vec![], vec![]);
    let mut multipart_t = vec![];
    let mut size = (0, 0);
    for i in 0..args.iters + 3 {
        // Decoding and resizing interleave (rows stream from the decoder into the resize), so
        // the two figures are the split `preprocess` itself measures.
        let (_, m) = time(multipart);
        let pre = preprocess(&bytes, decode_options).expect("decode");
        size = pre.source_size;
        let (d, r, tensor) = (pre.timings.decode, pre.timings.transform, pre.tensor);
        let (logits, n) = time(|| model.run(&tensor).expect("run"));
        let (_, p) = time(|| {
            let class_id = argmax(&logits);
            let prediction = Prediction {
                class_id,
                class_name: "x".into(),
                logits,
                source_size: size,
                timings: Timings::default(),
            };
            serde_json::to_string(&prediction_reply(&prediction, None))
        });
        if i >= 3 {
            multipart_t.push(m);
            decode_t.push(d);
            resize_t.push(r);
            infer_t.push(n);
            reply_t.push(p);
        }
    }
    let multipart_ms = median(multipart_t);
    let (decode_ms, resize_ms, infer_ms, reply_ms) = (
        median(decode_t),
        median(resize_t),
        median(infer_t),
        median(reply_t),
    );
    println!("cpu       {}", cpu());
    println!("model     {}", args.model.display());
    println!(
        "image     {} ({}x{}, {} bytes)",
        args.image.display(),
        size.0,
        size.1,
        bytes.len()
    );
    println!("threads   {}   iterations {}", args.threads, args.iters);
    println!(
        "model load (parse + optimise): {:8.1} ms",
        load.as_secs_f64() * 1000.0
    );
    println!("multipart (from memory) median: {multipart_ms:8.3} ms");
    println!("decode                 median: {decode_ms:8.2} ms");
    println!("resize+crop+normalise  median: {resize_ms:8.2} ms");
    println!("inference              median: {infer_ms:8.2} ms");
    println!("reply (argmax + JSON)  median: {reply_ms:8.3} ms");
    if args.json {
        println!(
            "{{\"cpu\":\"{}\",\"model_load_ms\":{:.1},\"multipart_ms_p50\":{multipart_ms:.3},\"decode_ms_p50\":{decode_ms:.3},\"preprocess_ms_p50\":{resize_ms:.3},\"inference_ms_p50\":{infer_ms:.3},\"reply_ms_p50\":{reply_ms:.4},\"threads\":{},\"image\":\"{}\",\"width\":{},\"height\":{}}}",
            cpu(),
            load.as_secs_f64() * 1000.0,
            args.threads,
            args.image.display(),
            size.0,
            size.1
        );
    }
}
