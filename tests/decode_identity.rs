//! The streaming decode + resize gives bit-identical tensors to the whole-image pipeline it
//! replaced: `tests/digests/preprocess.tsv` holds, for every sample in `$SHARED_DIR/samples`,
//! every file in `tests/fixtures` and the synthetic images of `tests/synth` (every colour mode,
//! bit depth and layout of every format), the SHA-256 of the tensor that commit da8dd80 (before
//! streaming) produced, with DCT scaling on and, for JPEGs, off. This test recomputes them all.
//!
//! `UPDATE_DIGESTS=1 cargo test --test decode_identity` rewrites the file; only do that on purpose
//! (a deliberate change of the arithmetic), never to make this test pass.

mod common;
mod synth;

use std::path::{Path, PathBuf};

use densenet_lambda::preprocess::{preprocess, DecodeOptions, ImageError};
use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One line of the digest file for one input under one set of options.
fn line(name: &str, variant: &str, bytes: &[u8], options: DecodeOptions) -> String {
    let input = hex(&Sha256::digest(bytes)[..8]);
    let result = match preprocess(bytes, options) {
        Ok(p) => {
            let mut hasher = Sha256::new();
            for v in &p.tensor {
                hasher.update(v.to_le_bytes());
            }
            format!(
                "ok {}x{} {}",
                p.source_size.0,
                p.source_size.1,
                hex(&hasher.finalize())
            )
        }
        Err(e) => format!(
            "err {}",
            match e {
                ImageError::UnknownFormat => "UnknownFormat",
                ImageError::Corrupt(_) => "Corrupt",
                ImageError::ZeroSized { .. } => "ZeroSized",
                ImageError::TooLarge { .. } => "TooLarge",
                ImageError::Abandoned => "Abandoned",
            }
        ),
    };
    format!("{name}\t{variant}\tin={input}\t{result}")
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "py"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn all_lines() -> Vec<String> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, bytes) in files(&common::shared().join("samples")) {
        inputs.push((format!("samples/{name}"), bytes));
    }
    for (name, bytes) in files(&manifest.join("tests/fixtures")) {
        inputs.push((format!("fixtures/{name}"), bytes));
    }
    for (name, bytes) in synth::identity_cases() {
        inputs.push((format!("synth/{name}"), bytes));
    }
    let mut lines = Vec::new();
    for (name, bytes) in &inputs {
        lines.push(line(name, "default", bytes, DecodeOptions::default()));
        if bytes.starts_with(&[0xFF, 0xD8]) {
            let no_dct = DecodeOptions {
                jpeg_dct_scaling: false,
                ..DecodeOptions::default()
            };
            lines.push(line(name, "no-dct", bytes, no_dct));
        }
    }
    lines
}

#[test]
fn tensors_equal_the_recorded_digests() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/digests/preprocess.tsv");
    let lines = all_lines();
    if std::env::var_os("UPDATE_DIGESTS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        eprintln!("wrote {} digests to {}", lines.len(), path.display());
        return;
    }
    let recorded = std::fs::read_to_string(&path).unwrap();
    let recorded: Vec<&str> = recorded.lines().collect();
    let mut mismatches = Vec::new();
    for now in &lines {
        let key: Vec<&str> = now.splitn(3, '\t').take(2).collect();
        match recorded
            .iter()
            .find(|r| r.splitn(3, '\t').take(2).eq(key.iter().copied()))
        {
            Some(before) if before == now => {}
            Some(before) => mismatches.push(format!("before: {before}\n   now: {now}")),
            None => mismatches.push(format!("not recorded: {now}")),
        }
    }
    eprintln!(
        "{} inputs × options compared, {} differ",
        lines.len(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "tensors differ from the recorded ones:\n{}",
        mismatches.join("\n")
    );
    assert_eq!(
        lines.len(),
        recorded.len(),
        "the recorded file has cases this run did not produce"
    );
}

/// Truncated and corrupted versions of every input above give an answer or an error, never a
/// panic (the streaming readers and the header parsers see all of them).
#[test]
fn damaged_inputs_never_panic() {
    let options = DecodeOptions {
        max_dimension: 4096,
        max_alloc_bytes: 64 << 20,
        jpeg_dct_scaling: true,
        ..DecodeOptions::default()
    };
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut inputs = files(&manifest.join("tests/fixtures"));
    inputs.extend(
        synth::identity_cases()
            .into_iter()
            .filter(|(_, b)| b.len() < 1_500_000),
    );
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut ok, mut refused) = (0, 0);
    for (name, bytes) in &inputs {
        let mut variants: Vec<Vec<u8>> = [8, 3, 2]
            .iter()
            .map(|d| bytes[..bytes.len() / d].to_vec())
            .collect();
        variants.push(bytes[..bytes.len().saturating_sub(12)].to_vec());
        for _ in 0..12 {
            let mut damaged = bytes.clone();
            for _ in 0..1 + next() % 4 {
                // Mostly in the headers, where the parsers are.
                let span = if next() % 2 == 0 {
                    damaged.len().min(256)
                } else {
                    damaged.len()
                };
                let at = (next() as usize) % span.max(1);
                damaged[at] = next() as u8;
            }
            variants.push(damaged);
        }
        for v in &variants {
            match std::panic::catch_unwind(|| preprocess(v, options)) {
                Ok(Ok(p)) => {
                    assert_eq!(p.tensor.len(), densenet_lambda::preprocess::TENSOR_LEN);
                    assert!(p.tensor.iter().all(|x| x.is_finite()), "{name}");
                    ok += 1;
                }
                Ok(Err(_)) => refused += 1,
                Err(_) => panic!("{name}: preprocess panicked on a damaged copy"),
            }
        }
    }
    eprintln!("damaged inputs: {ok} decoded, {refused} refused, none panicked");
}
