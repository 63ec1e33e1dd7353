//! The PyTorch "Deploying with Flask" tutorial (DenseNet-121 behind `GET /` and `POST /predict`)
//! as a Rust library with two thin edges: an AWS Lambda handler and a local HTTP server.
//!
//! A request travels one way: edge ([`lambda`], [`serve`]) → [`layers`] → [`api`] (one axum
//! router) → [`upload`] → [`classifier`] ([`preprocess`] → [`model`] → [`labels`]) → [`api`] →
//! edge. The core (`classifier` and below) knows nothing of HTTP or Lambda, so the benches call
//! it directly; the CLI's `classify` sends its files through the same router.
//!
//! The model file itself can be made without Python: [`fetch`] downloads torchvision's
//! checkpoint into PyTorch's cache, [`checkpoint`] reads and checks it, [`densenet`] builds the
//! DenseNet-121 graph around its weights, and [`import`] writes the model file (through
//! [`atomic_file`], so a failure leaves none). [`onnx_external`] spots ONNX files whose weights
//! live in a side file, which cannot be embedded.

#![forbid(unsafe_code)]

pub mod api;
pub mod atomic_file;
pub mod checkpoint;
pub mod classifier;
pub mod config;
pub mod densenet;
pub mod embedded;
pub mod fetch;
pub mod graph_rewrite;
pub mod import;
pub mod kernels;
pub mod labels;
pub mod lambda;
pub mod layers;
pub mod metrics;
pub mod model;
pub mod model_info;
pub mod onnx_external;
pub mod preprocess;
pub mod serve;
pub mod upload;
pub mod workers;
