//! The PyTorch "Deploying with Flask" tutorial (DenseNet-121 behind `GET /` and `POST /predict`)
//! as a Rust library with two thin edges: an AWS Lambda handler and a local HTTP server.
//!
//! A request travels one way: edge ([`lambda`], [`serve`]) → [`api`] → [`upload`] →
//! [`classifier`] ([`preprocess`] → [`model`] → [`labels`]) → [`api`] → edge. The core
//! (`classifier` and below) knows nothing of HTTP or Lambda, so the CLI and the benches call it
//! directly.

#![forbid(unsafe_code)]

pub mod api;
pub mod classifier;
pub mod config;
pub mod cors;
pub mod embedded;
pub mod kernels;
pub mod labels;
pub mod lambda;
pub mod model;
pub mod model_info;
pub mod preprocess;
pub mod serve;
pub mod upload;
pub mod workers;
