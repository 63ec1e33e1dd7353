//! The model file formats tract reads and writes here: ONNX (with its weights inside or in a side
//! file) and the decluttered NNEF archive `convert` makes, which skips parsing and decluttering
//! at start-up (a shorter cold start). Both end as a decluttered, rewritten [`TypedModel`] that
//! satisfies the classifier's contract: one `[1, 3, 224, 224]` f32 input, one `[1, N]` f32 output.

use std::io::Cursor;
use std::path::Path;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::{bail, ensure};

use crate::preprocess::CROP;

use super::error::ModelError;

/// Parses an ONNX model held in memory, fixes its input to one 224×224 RGB image, declutters
/// it and applies the graph rewrites (less arithmetic, same answer): the model-independent part
/// of loading, which `convert` does once ahead of time. Bytes have no folder, so a model with
/// external data must be loaded from its path ([`decluttered_from_onnx_path`]).
pub fn decluttered_from_onnx(bytes: &[u8]) -> TractResult<TypedModel> {
    declutter(onnx_parser().model_for_read(&mut Cursor::new(bytes))?)
}

/// [`decluttered_from_onnx`] for a file: tract reads it from its path, so weights kept in a
/// side file (external data, `x.onnx.data` beside `x.onnx`) are found and loaded too.
pub fn decluttered_from_onnx_path(path: &Path) -> TractResult<TypedModel> {
    declutter(onnx_parser().model_for_path(path)?)
}

/// Reads an NNEF archive written by [`write_nnef_archive`]: already decluttered and rewritten.
pub fn from_nnef_archive(bytes: &[u8]) -> TractResult<TypedModel> {
    nnef_framework().model_for_read(&mut Cursor::new(bytes))
}

/// tract's ONNX parser, told to ignore the shapes a file annotates its intermediate values
/// with (`value_info`). PyTorch's dynamo exporter annotates every one with the symbolic batch
/// axis (`batch,64,112,112`), which then refuses to unify with the batch of one the input is
/// fixed to; tract infers those shapes itself anyway.
fn onnx_parser() -> tract_onnx::Onnx {
    tract_onnx::onnx().with_ignore_value_info(true)
}

fn declutter(model: InferenceModel) -> TractResult<TypedModel> {
    let side = CROP as usize;
    let mut model = model
        .with_input_fact(0, f32::fact([1, 3, side, side]).into())?
        .into_typed()?
        .into_decluttered()?;
    super::rewrite::rewrite(&mut model)?;
    Ok(model)
}

/// Converts an ONNX classifier into a decluttered NNEF archive that loads faster (a shorter
/// cold start): `densenet-lambda convert IN.onnx OUT.nnef.tar`. An ONNX file with external
/// data becomes one self-contained archive.
pub fn convert_to_nnef(onnx: &Path, nnef: &Path) -> Result<(), ModelError> {
    if !onnx.is_file() {
        return Err(ModelError::Missing {
            path: onnx.display().to_string(),
        });
    }
    let model = decluttered_from_onnx_path(onnx)
        .map_err(|e| ModelError::invalid(onnx.display().to_string(), &e))?;
    write_nnef_archive(&model, &onnx.display().to_string(), nnef)
}

/// Writes a decluttered model as the NNEF archive `serve`, the Lambda and the build load
/// fastest, after checking it is a classifier with the expected contract (`source` names the
/// model in errors). The one writer behind `convert` and `import-weights`; atomic, so a
/// failure leaves nothing at `out` for the server or the build to pick up.
pub fn write_nnef_archive(model: &TypedModel, source: &str, out: &Path) -> Result<(), ModelError> {
    check_input(model)
        .and_then(|()| output_classes(model).map(drop))
        .map_err(|e| ModelError::invalid(source, &e))?;
    crate::atomic_file::write_atomically(out, |w| nnef_framework().write_to_tar(model, w).map(drop))
        .map_err(|e: TractError| ModelError::write(out.display().to_string(), &e))
}

/// tract's NNEF reader and writer, with the ONNX-specific operators registered.
fn nnef_framework() -> tract_nnef::framework::Nnef {
    use tract_onnx::WithOnnx;
    tract_nnef::nnef().with_onnx()
}

/// Whether the bytes are a tar archive (what `convert` writes), rather than an ONNX protobuf.
pub fn is_nnef_archive(bytes: &[u8]) -> bool {
    bytes.get(257..262) == Some(b"ustar")
}

/// [`is_nnef_archive`] for a file, from its first 262 bytes.
pub fn file_is_nnef_archive(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut head = Vec::with_capacity(262);
    std::fs::File::open(path)?
        .take(262)
        .read_to_end(&mut head)?;
    Ok(is_nnef_archive(&head))
}

/// Checks the model takes one `[1, 3, 224, 224]` f32 input.
pub fn check_input(model: &TypedModel) -> TractResult<()> {
    ensure!(
        model.inputs.len() == 1,
        "it has {} inputs, expected 1",
        model.inputs.len()
    );
    let fact = model.input_fact(0)?;
    let side = CROP as usize;
    let expected = f32::fact([1, 3, side, side]);
    ensure!(
        *fact == expected,
        "its input is {fact:?}, expected {expected:?}"
    );
    Ok(())
}

/// Checks the model has one `[1, N]` f32 output and returns N.
pub fn output_classes(model: &TypedModel) -> TractResult<usize> {
    ensure!(!model.outputs.is_empty(), "it has no output");
    let fact = model.output_fact(0)?;
    ensure!(
        fact.datum_type == f32::datum_type(),
        "its output is {:?}, expected f32",
        fact.datum_type
    );
    let shape = fact.shape.as_concrete().map(|s| s.to_vec());
    match shape.as_deref() {
        Some([1, n]) if *n > 0 => Ok(*n),
        _ => bail!(
            "its output shape is {:?}, expected [1, N] class scores",
            fact.shape
        ),
    }
}
