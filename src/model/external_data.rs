//! Whether an ONNX file keeps its weights in a side file ("external data").
//!
//! Current PyTorch's exporter (the dynamo one, the default since torch 2.9) writes `x.onnx`
//! plus `x.onnx.data`, with each weight pointing into the side file by a relative path. tract
//! resolves those when it loads the model from its path, but a model compiled into the binary
//! is only bytes, with no folder to find the side file in. `build.rs` includes this file (it
//! cannot use the crate it builds) to refuse such a file for embedding with the fix, and the
//! library uses it to explain the same when it meets one.
//!
//! Only the few protobuf fields that say where a tensor's bytes live are declared; prost skips
//! everything else (weights included) without copying it.

use prost::Message;

/// `ModelProto`, its graph only.
#[derive(Clone, PartialEq, Message)]
struct ModelHead {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphHead>,
}

/// `GraphProto`, its nodes and initializers only.
#[derive(Clone, PartialEq, Message)]
struct GraphHead {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeHead>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorHead>,
}

/// `NodeProto`, its attributes only (a `Constant` node carries its tensor in one).
#[derive(Clone, PartialEq, Message)]
struct NodeHead {
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<AttributeHead>,
}

/// `AttributeProto`, its tensor fields only.
#[derive(Clone, PartialEq, Message)]
struct AttributeHead {
    #[prost(message, optional, tag = "5")]
    t: Option<TensorHead>,
    #[prost(message, repeated, tag = "10")]
    tensors: Vec<TensorHead>,
}

/// `TensorProto`, where its data lives only.
#[derive(Clone, PartialEq, Message)]
struct TensorHead {
    #[prost(message, repeated, tag = "13")]
    external_data: Vec<Entry>,
    #[prost(int32, optional, tag = "14")]
    data_location: Option<i32>,
}

/// `StringStringEntryProto`.
#[derive(Clone, PartialEq, Message)]
struct Entry {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}

/// `TensorProto.DataLocation.EXTERNAL`.
const EXTERNAL: i32 = 1;

/// The side file the first externally stored tensor points to (its `location`, relative to the
/// model's folder), or `None` when every tensor is inside the file. An error means the bytes
/// are not an ONNX protobuf.
pub fn external_data_location(onnx: &[u8]) -> Result<Option<String>, prost::DecodeError> {
    let model = ModelHead::decode(onnx)?;
    let Some(graph) = model.graph else {
        return Ok(None);
    };
    let attributes = graph.node.iter().flat_map(|n| &n.attribute);
    let tensors = graph
        .initializer
        .iter()
        .chain(attributes.clone().filter_map(|a| a.t.as_ref()))
        .chain(attributes.flat_map(|a| &a.tensors));
    for tensor in tensors {
        if tensor.data_location == Some(EXTERNAL) || !tensor.external_data.is_empty() {
            let location = tensor
                .external_data
                .iter()
                .find(|e| e.key == "location")
                .map_or_else(|| "(no location given)".to_string(), |e| e.value.clone());
            return Ok(Some(location));
        }
    }
    Ok(None)
}
