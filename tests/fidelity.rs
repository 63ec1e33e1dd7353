//! The preprocessed tensor and the logits match torchvision + onnxruntime on every sample.

mod common;

use common::*;
use densenet_lambda::classifier::argmax;
use densenet_lambda::model::{Model, ModelOptions, ModelSource};
use densenet_lambda::preprocess::{preprocess, DecodeOptions};

fn tensor_diff(name: &str) -> (f32, f32) {
    let ours = preprocess(&sample_bytes(name), DecodeOptions::default())
        .unwrap()
        .tensor;
    let theirs = read_npy_f32(name);
    assert_eq!(ours.len(), theirs.len());
    let diffs: Vec<f32> = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .collect();
    let max = diffs.iter().copied().fold(0.0, f32::max);
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    eprintln!("{name}: tensor max {max:.4} mean {mean:.5}");
    (max, mean)
}

#[test]
fn png_tensor_is_pil_exact() {
    let (max, _) = tensor_diff("skimage_chelsea.png");
    assert!(max <= 0.005, "max {max}");
}

/// libjpeg-turbo decodes as PIL does (the same decoder), so the JPEG tensors are exact too.
#[test]
fn jpeg_tensors_are_pil_exact() {
    for (name, _) in SAMPLES.iter().filter(|(n, _)| !n.ends_with(".png")) {
        let (max, mean) = tensor_diff(name);
        assert_eq!(max, 0.0, "{name}: max {max}");
        assert_eq!(mean, 0.0, "{name}: mean {mean}");
    }
}

#[test]
fn densenet_graph_matches_onnxruntime_on_reference_tensors() {
    let model = Model::load(&ModelSource::File(densenet()), ModelOptions::default()).unwrap();
    assert_eq!(model.classes(), 1000);
    for (name, _) in SAMPLES {
        let logits = model.run(&read_npy_f32(name)).unwrap();
        let diff = max_abs(
            &logits,
            &reference_logits(name, "densenet121_untrained_seed0"),
        );
        eprintln!("{name}: densenet logits max abs {diff:.2e}");
        assert!(diff <= 1e-3, "{name}: {diff}");
    }
}

#[test]
fn efficientnet_end_to_end_from_files_matches_reference() {
    let model = Model::load(&ModelSource::File(efficientnet()), ModelOptions::default()).unwrap();
    for (name, expected) in SAMPLES {
        let tensor = preprocess(&sample_bytes(name), DecodeOptions::default())
            .unwrap()
            .tensor;
        let logits = model.run(&tensor).unwrap();
        let reference = reference_logits(name, "efficientnet_lite0");
        let diff = max_abs(&logits, &reference);
        eprintln!("{name}: end-to-end logits max abs {diff:.4}");
        assert!(diff <= 0.1, "{name}: {diff}");
        assert_eq!(argmax(&logits), expected, "{name}");
        assert_eq!(argmax(&reference), expected, "{name} reference");
    }
}

/// A large JPEG (kitten upscaled to 2880×2880, as a phone photo would be) decoded at a reduced
/// DCT scale gives the same top-1 as the full decode, with a small tensor difference.
#[test]
fn dct_scaled_decoding_of_large_jpegs_keeps_the_answer() {
    use densenet_lambda::preprocess::DCT_SCALED_SIDE;
    let kitten = image::load_from_memory(&sample_bytes("kitten.jpg"))
        .unwrap()
        .to_rgb8();
    let big = image::imageops::resize(&kitten, 2880, 2880, image::imageops::FilterType::Triangle);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 92)
        .encode_image(&big)
        .unwrap();
    let full = preprocess(
        &jpeg,
        DecodeOptions {
            jpeg_dct_scaling: false,
            ..DecodeOptions::default()
        },
    )
    .unwrap();
    let scaled = preprocess(&jpeg, DecodeOptions::default()).unwrap();
    assert_eq!(scaled.source_size, (2880, 2880));
    let diffs: Vec<f32> = full
        .tensor
        .iter()
        .zip(&scaled.tensor)
        .map(|(a, b)| (a - b).abs())
        .collect();
    let max = diffs.iter().copied().fold(0.0, f32::max);
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    eprintln!("2880x2880 JPEG, DCT-scaled vs full decode: tensor max {max:.4} mean {mean:.5}");
    assert!(
        max > 0.0,
        "the scaled path did not run (2880 px >= 2 x {DCT_SCALED_SIDE} px)"
    );
    assert!(mean <= 0.01, "mean {mean}");
    let model = Model::load(&ModelSource::File(efficientnet()), ModelOptions::default()).unwrap();
    let (a, b) = (
        model.run(&full.tensor).unwrap(),
        model.run(&scaled.tensor).unwrap(),
    );
    eprintln!("logits max abs {:.4}", max_abs(&a, &b));
    assert_eq!(argmax(&a), 282);
    assert_eq!(argmax(&b), 282);
}

/// `convert` writes a decluttered NNEF archive that answers exactly as the ONNX.
#[test]
fn nnef_conversion_gives_the_same_logits() {
    let dir = std::env::temp_dir().join(format!("densenet-nnef-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let nnef = dir.join("densenet121.nnef.tar");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_densenet-lambda"))
        .arg("convert")
        .arg(densenet())
        .arg(&nnef)
        .status()
        .unwrap();
    assert!(status.success());
    let from_onnx = Model::load(&ModelSource::File(densenet()), ModelOptions::default()).unwrap();
    let from_nnef = Model::load(&ModelSource::File(nnef), ModelOptions::default()).unwrap();
    eprintln!(
        "load: ONNX {:?}, NNEF {:?}",
        from_onnx.load_time(),
        from_nnef.load_time()
    );
    // The project's own operators run the archive as they run the ONNX file (tract reads an
    // archive back in another form, which the patterns must see through).
    assert_eq!(from_onnx.fused().dense_blocks, 4);
    assert_eq!(from_nnef.fused().dense_blocks, 4);
    assert_eq!(from_onnx.fused().stems, 1);
    assert_eq!(
        from_nnef.fused().stems,
        1,
        "the stem read back from the archive"
    );
    for (name, _) in SAMPLES {
        let tensor = read_npy_f32(name);
        let logits = from_nnef.run(&tensor).unwrap();
        assert_eq!(logits, from_onnx.run(&tensor).unwrap(), "{name}");
        let diff = max_abs(
            &logits,
            &reference_logits(name, "densenet121_untrained_seed0"),
        );
        assert!(diff <= 1e-3, "{name}: {diff}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
