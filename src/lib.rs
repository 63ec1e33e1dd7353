//! The PyTorch "Deploying with Flask" tutorial (DenseNet-121 behind `GET /` and `POST /predict`)
//! as a Rust library with two thin edges: an AWS Lambda handler and a local HTTP server.
//!
//! A request travels one way: edge ([`lambda`], [`serve`]) → [`layers`] → [`api`] (one axum
//! router) → [`upload`] → [`classifier`] ([`preprocess`] → [`model`] → [`labels`]) → [`api`] →
//! edge. The core (`classifier` and below) knows nothing of HTTP or Lambda, so the benches call
//! it directly; the CLI's `classify` sends its files through the same router.

#![forbid(unsafe_code)]

pub mod api;
pub mod classifier;
pub mod config;
pub mod embedded;
pub mod graph_rewrite;
pub mod kernels;
pub mod labels;
pub mod lambda;
pub mod layers;
pub mod metrics;
pub mod model;
pub mod model_info;
pub mod preprocess;
pub mod serve;
pub mod upload;
pub mod workers;
