//! torchvision's DenseNet-121 checkpoint → the model file the function runs, without Python: the
//! tutorial's own weights, for a first run and for deployment.
//!
//! - [`fetch`]: download the checkpoint into PyTorch's cache, checked (`fetch-model`);
//! - [`checkpoint`]: read a `.pth` (legacy stream or zip) and check it tensor by tensor;
//! - [`densenet`]: the DenseNet-121 architecture, laid out as ONNX around the weights;
//! - [`import`]: checkpoint → ONNX file or NNEF archive (`import-weights`, and `fetch-model`
//!   after its download).
//!
//! This room uses [`crate::model`] (to declutter and write the model file); the model never uses
//! it: whether a missing model is fetched is the binary's decision.

pub mod checkpoint;
pub mod densenet;
pub mod fetch;
pub mod import;
