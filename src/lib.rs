//! The PyTorch "Deploying with Flask" tutorial (DenseNet-121 behind `GET /` and `POST /predict`)
//! as a Rust library with two thin runners: an AWS Lambda handler and a local HTTP server.
//!
//! A request travels one way: runner ([`lambda`], [`serve`]) → [`http`] (one axum router) →
//! [`classifier`] ([`preprocess`] → [`model`] → [`labels`]) → [`http`] → runner. The core
//! (`classifier` and below) knows nothing of HTTP, Lambda or networks, so the benches call it
//! directly; the CLI's `classify` sends its files through the same router.
//!
//! The model file itself can be made without Python: [`weights`] fetches torchvision's
//! checkpoint, reads it and lays DenseNet-121 out around it, and writes the model file through
//! [`model`] (atomically, with [`atomic_file`]). Whether a missing model is fetched is the
//! binary's decision, handed to the model loader ([`model::MakeMissing`]).

#![forbid(unsafe_code)]

pub mod atomic_file;
pub mod classifier;
pub mod http;
pub mod labels;
pub mod lambda;
pub mod model;
pub mod preprocess;
pub mod serve;
pub mod weights;
