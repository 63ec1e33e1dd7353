//! The ONNX classifier run by tract: load, optimise, keep once per process, run → logits.
//!
//! Loading DenseNet-121 (parse, declutter, optimise) is most of a cold start, so it happens once,
//! on a classification thread (the servers' start-up preload, or else the first prediction),
//! never for `GET /`, and the optimised plan is shared by every later request. A failed load is
//! not cached: the next request tries again (and logs again), so fixing `MODEL_PATH` or the file
//! heals a running server.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use once_cell::sync::OnceCell;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::{bail, ensure};

use crate::preprocess::{CROP, TENSOR_LEN};

/// The tract release this crate pins in Cargo.toml (a test keeps the two equal).
pub const TRACT_VERSION: &str = "0.23.9";

/// Where the model comes from.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// An ONNX file on disk (`MODEL_PATH`, or the default location).
    File(PathBuf),
    /// An ONNX file compiled into the binary (the `embed-model` feature), so a deployed Lambda
    /// needs nothing beside `bootstrap`.
    Embedded {
        name: &'static str,
        bytes: &'static [u8],
    },
    /// No model anywhere yet: torchvision's DenseNet-121 weights are fetched into PyTorch's
    /// cache and turned into this file on the first load, as the tutorial downloads them on its
    /// first run (`serve` and `classify` only; the Lambda function never downloads).
    Fetch(PathBuf),
}

impl ModelSource {
    /// How the model is named in replies and error messages.
    pub fn describe(&self) -> String {
        match self {
            ModelSource::File(path) => path.display().to_string(),
            ModelSource::Embedded { name, .. } => format!("{name} (embedded)"),
            ModelSource::Fetch(path) => format!("{} (fetched on first use)", path.display()),
        }
    }
}

/// How tract runs the model.
#[derive(Debug, Clone, Copy)]
pub struct ModelOptions {
    /// Threads for matrix products; 1 runs on the calling thread only.
    pub threads: usize,
}

impl Default for ModelOptions {
    /// One thread per available CPU (a 1769 MB+ Lambda has two vCPUs).
    fn default() -> Self {
        ModelOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Why the model cannot answer. Every variant is our fault, not the client's: HTTP 500.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    /// Nothing at the configured path.
    #[error("the model file {path} does not exist; create it with `densenet-lambda fetch-model` (torchvision's DenseNet-121 weights), `densenet-lambda import-weights WEIGHTS.pth OUT` or `python3 model/export_densenet121.py`, or set MODEL_PATH to an ONNX image classifier taking a [1,3,224,224] f32 input")]
    Missing { path: String },
    /// The file exists but tract cannot load it as a classifier with the expected contract.
    #[error("the model {path} could not be loaded ({reason}); set MODEL_PATH to an ONNX image classifier with one [1,3,224,224] f32 input and one [1,N] output, or re-export it with `python3 model/export_densenet121.py`")]
    Invalid { path: String, reason: String },
    /// tract failed while running a loaded model.
    #[error("the model failed while running: {0}")]
    Run(String),
    /// The genuine weights could not be fetched (the message names the offline routes when
    /// there is no network).
    #[error("no model is configured and torchvision's DenseNet-121 could not be fetched: {0}")]
    Fetch(String),
    /// A model file could not be written (nothing was left at the path).
    #[error("cannot write the model file {path} ({reason}); check that its folder is writable and the disk has room")]
    Write { path: String, reason: String },
}

/// A loaded, optimised model ready to run.
#[derive(Debug)]
pub struct Model {
    plan: Arc<TypedRunnableModel>,
    classes: usize,
    load_time: Duration,
}

impl Model {
    /// Parses, checks and optimises the model for a batch of one 224×224 RGB image.
    pub fn load(source: &ModelSource, options: ModelOptions) -> Result<Model, ModelError> {
        let start = Instant::now();
        if let Some(edit) = crate::kernels::tune() {
            tracing::debug!(edit, "tract kernel choice adjusted for this CPU");
        }
        let invalid = |e: TractError| ModelError::Invalid {
            path: source.describe(),
            reason: format!("{e:#}").replace('\n', " "),
        };
        // An NNEF archive made by `convert` is already decluttered: only optimisation is left.
        // An ONNX file is loaded from its path, so weights kept in a side file (what current
        // PyTorch exports: `x.onnx` + `x.onnx.data`) are found beside it.
        let mut typed = match source {
            ModelSource::File(path) | ModelSource::Fetch(path) => {
                if matches!(source, ModelSource::Fetch(_)) && !path.is_file() {
                    tracing::info!(to = %path.display(), "no model configured or found: fetching torchvision's DenseNet-121 weights");
                    crate::fetch::fetch_model(path, crate::fetch::Progress::Log)
                        .map_err(|e| ModelError::Fetch(e.to_string()))?;
                }
                if !path.is_file() {
                    return Err(ModelError::Missing {
                        path: path.display().to_string(),
                    });
                }
                if file_is_nnef_archive(path).map_err(|e| invalid(e.into()))? {
                    let bytes = std::fs::read(path).map_err(|e| invalid(e.into()))?;
                    nnef_framework().model_for_read(&mut Cursor::new(&bytes))
                } else {
                    decluttered_from_onnx_path(path)
                }
            }
            ModelSource::Embedded { bytes, .. } if is_nnef_archive(bytes) => {
                nnef_framework().model_for_read(&mut Cursor::new(bytes))
            }
            ModelSource::Embedded { bytes, .. } => decluttered_from_onnx(bytes).map_err(|e| {
                match crate::onnx_external::external_data_location(bytes) {
                    Ok(Some(side)) => e.context(format!(
                        "the embedded ONNX keeps its weights in a side file ({side}), which \
                         cannot travel inside the binary; rebuild after \
                         `densenet-lambda convert MODEL.onnx model/densenet121.nnef.tar`"
                    )),
                    _ => e,
                }
            }),
        }
        .map_err(invalid)?;
        check_input(&typed).map_err(invalid)?;
        typed.optimize().map_err(invalid)?;
        let classes = output_classes(&typed).map_err(invalid)?;
        let run_options = RunOptions {
            executor: executor(options.threads),
            ..RunOptions::default()
        };
        let plan = typed
            .into_runnable_with_options(&run_options)
            .map_err(invalid)?;
        Ok(Model {
            plan,
            classes,
            load_time: start.elapsed(),
        })
    }

    /// Runs one preprocessed image (`[3, 224, 224]` values) and returns its logits.
    pub fn run(&self, image: &[f32]) -> Result<Vec<f32>, ModelError> {
        let side = CROP as usize;
        debug_assert_eq!(image.len(), TENSOR_LEN);
        let input = Tensor::from_shape(&[1, 3, side, side], image)
            .map_err(|e| ModelError::Run(e.to_string()))?;
        let outputs = self
            .plan
            .run(tvec!(input.into()))
            .map_err(|e| ModelError::Run(format!("{e:#}")))?;
        let logits = outputs[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| ModelError::Run(e.to_string()))?;
        Ok(logits.iter().copied().collect())
    }

    /// The optimised plan, for tools that look inside it (`examples/profile_ops.rs`).
    pub fn plan(&self) -> &Arc<TypedRunnableModel> {
        &self.plan
    }

    /// Number of classes the model scores.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// How long parsing and optimising took.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }
}

/// Parses an ONNX model held in memory, fixes its input to one 224×224 RGB image, declutters
/// it and applies `graph_rewrite` (less arithmetic, same answer): the model-independent part of
/// loading, which `convert` does once ahead of time. Bytes have no folder, so a model with
/// external data must be loaded with [`decluttered_from_onnx_path`] instead.
pub fn decluttered_from_onnx(bytes: &[u8]) -> TractResult<TypedModel> {
    declutter(onnx_parser().model_for_read(&mut Cursor::new(bytes))?)
}

/// [`decluttered_from_onnx`] for a file: tract reads it from its path, so weights kept in a
/// side file (external data, `x.onnx.data` beside `x.onnx`) are found and loaded too.
pub fn decluttered_from_onnx_path(path: &Path) -> TractResult<TypedModel> {
    declutter(onnx_parser().model_for_path(path)?)
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
    crate::graph_rewrite::rewrite(&mut model)?;
    Ok(model)
}

/// Converts an ONNX classifier into a decluttered NNEF archive that loads faster (a shorter
/// cold start): `densenet-lambda convert IN.onnx OUT.nnef.tar`. An ONNX file with external
/// data becomes one self-contained archive.
pub fn convert_to_nnef(onnx: &Path, nnef: &Path) -> Result<(), ModelError> {
    let invalid = |e: TractError| ModelError::Invalid {
        path: onnx.display().to_string(),
        reason: format!("{e:#}").replace('\n', " "),
    };
    if !onnx.is_file() {
        return Err(ModelError::Missing {
            path: onnx.display().to_string(),
        });
    }
    let model = decluttered_from_onnx_path(onnx).map_err(invalid)?;
    write_nnef_archive(&model, &onnx.display().to_string(), nnef)
}

/// Writes a decluttered model as the NNEF archive `serve`, the Lambda and the build load
/// fastest, after checking it is a classifier with the expected contract (`source` names the
/// model in errors). The one writer behind `convert` and `import-weights`; atomic, so a
/// failure leaves nothing at `out` for the server or the build to pick up.
pub fn write_nnef_archive(model: &TypedModel, source: &str, out: &Path) -> Result<(), ModelError> {
    check_input(model)
        .and_then(|()| output_classes(model).map(drop))
        .map_err(|e| ModelError::Invalid {
            path: source.to_string(),
            reason: format!("{e:#}").replace('\n', " "),
        })?;
    crate::atomic_file::write_atomically(out, |w| nnef_framework().write_to_tar(model, w).map(drop))
        .map_err(|e: TractError| ModelError::Write {
            path: out.display().to_string(),
            reason: format!("{e:#}").replace('\n', " "),
        })
}

/// tract's NNEF reader and writer, with the ONNX-specific operators registered.
fn nnef_framework() -> tract_nnef::framework::Nnef {
    use tract_onnx::WithOnnx;
    tract_nnef::nnef().with_onnx()
}

/// Whether the bytes are a tar archive (what `convert` writes), rather than an ONNX protobuf.
fn is_nnef_archive(bytes: &[u8]) -> bool {
    bytes.get(257..262) == Some(b"ustar")
}

/// [`is_nnef_archive`] for a file, from its first 262 bytes.
fn file_is_nnef_archive(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut head = Vec::with_capacity(262);
    std::fs::File::open(path)?
        .take(262)
        .read_to_end(&mut head)?;
    Ok(is_nnef_archive(&head))
}

/// Checks the model takes one `[1, 3, 224, 224]` f32 input.
fn check_input(model: &TypedModel) -> TractResult<()> {
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
fn output_classes(model: &TypedModel) -> TractResult<usize> {
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

/// The executor for `threads` matrix-product threads, the loading thread among them.
///
/// The thread that loads the model is a classification worker (with the default single worker,
/// the one that will run it), so it joins the pool as one of its threads: the graph then runs on
/// it, and each matrix product is shared with the pool's other threads without a hand-over to
/// the pool and back (121 per DenseNet-121 image). Measured on 2 threads against a pool of
/// separate threads: inference p50 51-52 ms vs 55-58 ms, and peak RSS unchanged, where handing
/// the whole run to a separate pool was as fast but cost 20+ MB (a second thread's allocator
/// arena of activations). A thread already in a pool (a second model loaded on the same thread)
/// gets a pool of separate threads.
fn executor(threads: usize) -> Option<tract_linalg::multithread::Executor> {
    if threads <= 1 {
        return None;
    }
    let builder = || {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("matmul-{i}"))
    };
    match builder()
        .use_current_thread()
        .build()
        .or_else(|_| builder().build())
    {
        Ok(pool) => Some(tract_linalg::multithread::Executor::MultiThread(Arc::new(
            pool,
        ))),
        Err(e) => {
            tracing::warn!(error = %e, threads, "no matrix-product thread pool; running on one thread");
            None
        }
    }
}

/// The process-wide model, loaded by the first caller (the preload or a request) and shared afterwards.
#[derive(Debug)]
pub struct LazyModel {
    source: ModelSource,
    options: ModelOptions,
    cell: OnceCell<Arc<Model>>,
}

impl LazyModel {
    /// Remembers where the model is; loads nothing yet.
    pub fn new(source: ModelSource, options: ModelOptions) -> LazyModel {
        LazyModel {
            source,
            options,
            cell: OnceCell::new(),
        }
    }

    /// The model, loading it if no earlier call succeeded. Concurrent first callers wait for one load.
    pub fn get(&self) -> Result<Arc<Model>, ModelError> {
        self.cell
            .get_or_try_init(|| {
                let model = Model::load(&self.source, self.options);
                match &model {
                    Ok(m) => {
                        let kernels = crate::model_info::matmul_kernels(m)
                            .iter()
                            .map(|(name, count)| format!("{name}×{count}"))
                            .collect::<Vec<_>>()
                            .join(",");
                        tracing::info!(model = %self.source.describe(), load_ms = m.load_time.as_millis() as u64, classes = m.classes, kernels, "model loaded")
                    }
                    Err(e) => tracing::error!(model = %self.source.describe(), error = %e, "model load failed"),
                }
                model.map(Arc::new)
            })
            .cloned()
    }

    /// The model if it is already loaded, without loading it.
    pub fn loaded(&self) -> Option<&Arc<Model>> {
        self.cell.get()
    }

    /// Where the model comes from.
    pub fn source(&self) -> &ModelSource {
        &self.source
    }

    /// How the model runs once loaded (the worker count follows its thread count).
    pub fn options(&self) -> ModelOptions {
        self.options
    }
}

/// The converted model, relative to the working directory (and to the crate for the build):
/// the first place `serve` and the build look.
pub const DEFAULT_NNEF_PATH: &str = "model/densenet121.nnef.tar";

/// The ONNX model, relative to the working directory (and to the crate for the build): where
/// `serve` and the build look when there is no converted model.
pub const DEFAULT_ONNX_PATH: &str = "model/densenet121.onnx";

/// The documented default model location, relative to the working directory: the converted
/// `model/densenet121.nnef.tar` if it exists (it loads faster), else `model/densenet121.onnx`.
pub fn default_model_path() -> &'static Path {
    let nnef = Path::new(DEFAULT_NNEF_PATH);
    if nnef.is_file() {
        nnef
    } else {
        Path::new(DEFAULT_ONNX_PATH)
    }
}

/// Where `fetch-model` writes by default: the first location `serve` and the build look at
/// ([`DEFAULT_NNEF_PATH`]), so a plain `densenet-lambda fetch-model` is all either needs.
pub fn default_fetch_path() -> &'static Path {
    Path::new(DEFAULT_NNEF_PATH)
}
