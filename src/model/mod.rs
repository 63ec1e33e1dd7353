//! The model, run by tract: load (ONNX or the NNEF archive, from a file or the binary), optimise,
//! keep once per process, run → logits. It knows nothing of HTTP, Lambda or networks.
//!
//! Loading DenseNet-121 (parse, declutter, optimise) is most of a cold start, so it happens once,
//! on a classification thread (the servers' start-up preload, or else the first prediction),
//! never for `GET /`, and the optimised plan is shared by every later request. A failed load is
//! not cached: the next request tries again (and logs again), so fixing `MODEL_PATH` or the file
//! heals a running server.
//!
//! - [`source`]: where the model comes from, and what to do when its file is missing;
//! - [`format`](mod@format): ONNX and NNEF in and out, and the classifier's input/output contract;
//! - [`external_data`]: ONNX files whose weights live in a side file;
//! - [`rewrite`]: graph rewrites applied when a model is loaded or converted;
//! - [`kernels`]: which matrix-product kernels tract uses on this CPU, and which CPU this is;
//! - [`ops`]: the project's own operators, for the patterns tract's are slow on (DenseNet's
//!   dense blocks);
//! - [`embedded`]: the model compiled into the binary.

pub mod embedded;
pub mod error;
pub mod external_data;
pub mod format;
pub mod kernels;
pub mod ops;
pub mod rewrite;
pub mod source;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use once_cell::sync::OnceCell;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::matmul::optimized::OptMatMul;

use crate::preprocess::{CROP, TENSOR_LEN};

pub use error::ModelError;
pub use format::{convert_to_nnef, decluttered_from_onnx, write_nnef_archive};
pub use source::{
    default_model_file, MakeMissing, ModelSource, DEFAULT_NNEF_PATH, DEFAULT_ONNX_PATH,
};

/// The tract release this crate pins in Cargo.toml (a test keeps the two equal).
pub const TRACT_VERSION: &str = "0.23.9";

/// How tract runs the model.
#[derive(Debug, Clone, Copy)]
pub struct ModelOptions {
    /// Threads for matrix products; 1 runs on the calling thread only.
    pub threads: usize,
    /// Run the patterns [`ops`] has operators for with them (the default); `false` runs every
    /// node with tract's own operators, for comparisons.
    pub own_ops: bool,
}

impl ModelOptions {
    /// `threads` threads, the project's own operators on.
    pub fn threads(threads: usize) -> ModelOptions {
        ModelOptions {
            threads,
            own_ops: true,
        }
    }
}

impl Default for ModelOptions {
    /// One thread per available CPU (a 1769 MB+ Lambda has two vCPUs).
    fn default() -> Self {
        ModelOptions::threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// A loaded, optimised model ready to run.
#[derive(Debug)]
pub struct Model {
    plan: Arc<TypedRunnableModel>,
    classes: usize,
    fused: ops::Fused,
    load_time: Duration,
}

impl Model {
    /// Parses, checks and optimises the model for a batch of one 224×224 RGB image. A
    /// [`ModelSource::Made`] file that is missing is made first.
    pub fn load(source: &ModelSource, options: ModelOptions) -> Result<Model, ModelError> {
        let start = Instant::now();
        if let Some(edit) = kernels::tune() {
            tracing::debug!(edit, "tract kernel choice adjusted for this CPU");
        }
        let invalid = |e: TractError| ModelError::invalid(source.describe(), &e);
        // An NNEF archive made by `convert` skips parsing ONNX and most of decluttering.
        // An ONNX file is loaded from its path, so weights kept in a side file (what current
        // PyTorch exports: `x.onnx` + `x.onnx.data`) are found beside it.
        let mut from_nnef = false;
        let mut typed =
            match source {
                ModelSource::File(path) | ModelSource::Made { path, .. } => {
                    if let ModelSource::Made { maker, .. } = source {
                        if !path.is_file() {
                            (maker.make)(path).map_err(ModelError::NotMade)?;
                        }
                    }
                    if !path.is_file() {
                        return Err(ModelError::Missing {
                            path: path.display().to_string(),
                        });
                    }
                    if format::file_is_nnef_archive(path).map_err(|e| invalid(e.into()))? {
                        from_nnef = true;
                        let bytes = std::fs::read(path).map_err(|e| invalid(e.into()))?;
                        format::from_nnef_archive(&bytes)
                    } else {
                        format::decluttered_from_onnx_path(path)
                    }
                }
                ModelSource::Embedded { bytes, .. } if format::is_nnef_archive(bytes) => {
                    from_nnef = true;
                    format::from_nnef_archive(bytes)
                }
                ModelSource::Embedded { bytes, .. } => decluttered_from_onnx(bytes).map_err(|e| {
                    match external_data::external_data_location(bytes) {
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
        format::check_input(&typed).map_err(invalid)?;
        let fused = if options.own_ops {
            // tract reads an archive back with no-op casts and its 1×1 convolutions as reshaped
            // matrix products; decluttering once more gives them the form the patterns match.
            if from_nnef {
                typed.declutter().map_err(invalid)?;
            }
            ops::fuse(&mut typed).map_err(invalid)?
        } else {
            ops::Fused::default()
        };
        typed.optimize().map_err(invalid)?;
        let classes = format::output_classes(&typed).map_err(invalid)?;
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
            fused,
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

    /// What the project's own operators run ([`ops::fuse`]).
    pub fn fused(&self) -> ops::Fused {
        self.fused
    }

    /// How long parsing and optimising took.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// The kernel of each matrix product in the optimised plan, counted by name: the first thing
    /// to look at when speed differs between machines (the load log line, `GET /model`).
    pub fn matmul_kernels(&self) -> BTreeMap<String, usize> {
        let mut kernels = BTreeMap::new();
        for node in &self.plan.model().nodes {
            if let Some(matmul) = node.op_as::<OptMatMul>() {
                for kernel in &matmul.mmm {
                    *kernels.entry(kernel.name().to_owned()).or_default() += 1;
                }
            }
        }
        kernels
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
                        let kernels = m.matmul_kernels()
                            .iter()
                            .map(|(name, count)| format!("{name}×{count}"))
                            .collect::<Vec<_>>()
                            .join(",");
                        // What runs the model: the blocks the project's own operators took
                        // over (and their instruction set), tract's kernels for the rest.
                        let (dense_blocks, stems) = (m.fused.dense_blocks, m.fused.stems);
                        let isa = ops::isa::Isa::best().name();
                        tracing::info!(model = %self.source.describe(), load_ms = m.load_time.as_millis() as u64, classes = m.classes, dense_blocks, stems, isa, kernels, "model loaded")
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
