//! torchvision's DenseNet-121, built here as an ONNX graph from its weights.
//!
//! torchvision publishes DenseNet-121 as a PyTorch checkpoint (`densenet121-a639ec97.pth`): the
//! weights only, the architecture lives in torchvision's Python code. This module is that code
//! for the one model the tutorial serves: [`parameters`] lists the state dict a checkpoint must
//! hold (names and shapes), and [`onnx_model`] lays the same graph out as ONNX nodes around those
//! weights, so a checkpoint becomes a runnable model without Python.
//!
//! Why ONNX and not tract's NNEF directly: an ONNX file is portable. onnxruntime, Netron or
//! `onnx.checker` can open it and check it against PyTorch, and it travels the same loader and
//! `convert` path as the file a Python export (`model/export_densenet121.py`) writes, so both
//! routes end in the same tract code. The NNEF archive is then made from it by the same
//! decluttering `densenet-lambda convert` does.

use std::collections::HashMap;

use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// Channels each dense layer adds (torchvision's `growth_rate`).
pub const GROWTH_RATE: usize = 32;
/// Width of each dense layer's bottleneck, in multiples of the growth rate (`bn_size`).
pub const BN_SIZE: usize = 4;
/// Dense layers in each of the four dense blocks (`block_config`).
pub const BLOCK_CONFIG: [usize; 4] = [6, 12, 24, 16];
/// Channels out of the stem convolution (`num_init_features`).
pub const INIT_FEATURES: usize = 64;
/// ImageNet classes scored by the classifier.
pub const CLASSES: usize = 1000;
/// Side of the input image, as the tutorial's preprocessing crops it.
pub const IMAGE_SIDE: usize = 224;
/// The ONNX operator set the graph is written in (what `model/export_densenet121.py` asks for).
pub const OPSET: i64 = 13;
/// Name of the graph's input, `[batch, 3, 224, 224]` f32.
pub const INPUT_NAME: &str = "input";
/// Name of the graph's output, `[batch, 1000]` f32 logits.
pub const OUTPUT_NAME: &str = "output";
/// PyTorch's `BatchNorm2d` default epsilon, which torchvision's DenseNet keeps.
const BN_EPSILON: f32 = 1e-5;
/// ONNX IR version that goes with opset 13 (what PyTorch writes for it).
const IR_VERSION: i64 = 7;

/// One tensor of the model's state dict: its name (today's torchvision names, e.g.
/// `features.denseblock1.denselayer1.norm1.weight`) and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    pub shape: Vec<usize>,
}

/// The model's weights by state-dict name, each checked against [`parameters`] by whoever
/// builds it ([`super::checkpoint`]).
#[derive(Debug, Default)]
pub struct Weights {
    tensors: HashMap<String, Vec<f32>>,
}

impl Weights {
    /// An empty set; fill it with [`Weights::insert`].
    pub fn new() -> Weights {
        Weights::default()
    }

    /// Adds (or replaces) one tensor's values, row-major.
    pub fn insert(&mut self, name: impl Into<String>, values: Vec<f32>) {
        self.tensors.insert(name.into(), values);
    }

    /// One tensor's values, if present.
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.tensors.get(name).map(Vec::as_slice)
    }

    /// Number of tensors held.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether no tensor is held.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}

/// The state dict of torchvision's `densenet121()` without its `num_batches_tracked` counters
/// (which inference never reads), in `state_dict()` order: 606 tensors.
pub fn parameters() -> Vec<Parameter> {
    let mut out = Vec::with_capacity(606);
    let mut push = |name: String, shape: Vec<usize>| out.push(Parameter { name, shape });
    let batch_norm = |push: &mut dyn FnMut(String, Vec<usize>), prefix: &str, c: usize| {
        for field in ["weight", "bias", "running_mean", "running_var"] {
            push(format!("{prefix}.{field}"), vec![c]);
        }
    };
    push("features.conv0.weight".into(), vec![INIT_FEATURES, 3, 7, 7]);
    batch_norm(&mut push, "features.norm0", INIT_FEATURES);
    let mut channels = INIT_FEATURES;
    let bottleneck = BN_SIZE * GROWTH_RATE;
    for (b, &layers) in BLOCK_CONFIG.iter().enumerate() {
        for l in 0..layers {
            let prefix = format!("features.denseblock{}.denselayer{}", b + 1, l + 1);
            let c_in = channels + l * GROWTH_RATE;
            batch_norm(&mut push, &format!("{prefix}.norm1"), c_in);
            push(
                format!("{prefix}.conv1.weight"),
                vec![bottleneck, c_in, 1, 1],
            );
            batch_norm(&mut push, &format!("{prefix}.norm2"), bottleneck);
            push(
                format!("{prefix}.conv2.weight"),
                vec![GROWTH_RATE, bottleneck, 3, 3],
            );
        }
        channels += layers * GROWTH_RATE;
        if b + 1 < BLOCK_CONFIG.len() {
            let prefix = format!("features.transition{}", b + 1);
            batch_norm(&mut push, &format!("{prefix}.norm"), channels);
            push(
                format!("{prefix}.conv.weight"),
                vec![channels / 2, channels, 1, 1],
            );
            channels /= 2;
        }
    }
    batch_norm(&mut push, "features.norm5", channels);
    push("classifier.weight".into(), vec![CLASSES, channels]);
    push("classifier.bias".into(), vec![CLASSES]);
    out
}

/// Lays out torchvision's `densenet121()` forward pass as an ONNX model (opset 13) whose
/// initializers are `weights`, under their state-dict names: input `input` f32
/// `[batch, 3, 224, 224]` (dynamic batch), output `output` f32 `[batch, 1000]` logits.
///
/// `weights` must hold every tensor of [`parameters`] with its shape; a missing one is
/// reported by name (the checkpoint reader checks this first, so it is not expected here).
pub fn onnx_model(weights: &Weights) -> Result<ModelProto, String> {
    let mut g = Graph::new(weights);
    let mut x = g.conv("features.conv0", INPUT_NAME, 7, 2, 3)?;
    x = g.batch_norm("features.norm0", &x)?;
    x = g.relu("features.relu0", &x);
    x = g.max_pool("features.pool0", &x);
    for (b, &layers) in BLOCK_CONFIG.iter().enumerate() {
        let block = format!("features.denseblock{}", b + 1);
        // torchvision's _DenseBlock: every layer reads the concatenation of the block's input
        // and all earlier layers' outputs, and the block returns the concatenation of them all.
        let mut features = vec![x];
        for l in 0..layers {
            let prefix = format!("{block}.denselayer{}", l + 1);
            let input = if features.len() == 1 {
                features[0].clone()
            } else {
                g.concat(&format!("{prefix}.cat"), &features)
            };
            let mut y = g.batch_norm(&format!("{prefix}.norm1"), &input)?;
            y = g.relu(&format!("{prefix}.relu1"), &y);
            y = g.conv(&format!("{prefix}.conv1"), &y, 1, 1, 0)?;
            y = g.batch_norm(&format!("{prefix}.norm2"), &y)?;
            y = g.relu(&format!("{prefix}.relu2"), &y);
            y = g.conv(&format!("{prefix}.conv2"), &y, 3, 1, 1)?;
            features.push(y);
        }
        x = g.concat(&block, &features);
        if b + 1 < BLOCK_CONFIG.len() {
            let prefix = format!("features.transition{}", b + 1);
            x = g.batch_norm(&format!("{prefix}.norm"), &x)?;
            x = g.relu(&format!("{prefix}.relu"), &x);
            x = g.conv(&format!("{prefix}.conv"), &x, 1, 1, 0)?;
            x = g.avg_pool(&format!("{prefix}.pool"), &x);
        }
    }
    x = g.batch_norm("features.norm5", &x)?;
    // DenseNet.forward: relu → adaptive_avg_pool2d(1) → flatten(1) → classifier.
    x = g.relu("relu", &x);
    x = g.node("GlobalAveragePool", "avgpool", &[&x], vec![]);
    x = g.node("Flatten", "flatten", &[&x], vec![int("axis", 1)]);
    g.gemm("classifier", &x)?;
    Ok(g.finish())
}

/// Builds the graph node by node, adding each weight as an initializer when a node first uses it.
struct Graph<'a> {
    weights: &'a Weights,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl<'a> Graph<'a> {
    fn new(weights: &'a Weights) -> Graph<'a> {
        Graph {
            weights,
            nodes: Vec::new(),
            initializers: Vec::new(),
        }
    }

    /// Adds a state-dict tensor as an initializer and returns its name.
    fn weight(&mut self, name: &str, shape: &[usize]) -> Result<String, String> {
        let values = self
            .weights
            .get(name)
            .ok_or_else(|| format!("the weights have no tensor {name}"))?;
        let expected: usize = shape.iter().product();
        if values.len() != expected {
            return Err(format!(
                "the tensor {name} has {} values, expected {expected} (shape {shape:?})",
                values.len()
            ));
        }
        self.initializers.push(TensorProto {
            name: name.to_string(),
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Float as i32,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..TensorProto::default()
        });
        Ok(name.to_string())
    }

    /// Adds a node whose single output is named after the module and operator, and returns it.
    fn node(
        &mut self,
        op: &str,
        module: &str,
        inputs: &[&str],
        attribute: Vec<AttributeProto>,
    ) -> String {
        let output = format!("{module}/{op}");
        self.nodes.push(NodeProto {
            op_type: op.to_string(),
            name: output.clone(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            attribute,
            ..NodeProto::default()
        });
        output
    }

    fn channels(&self, name: &str) -> Result<usize, String> {
        self.weights
            .get(name)
            .map(<[f32]>::len)
            .ok_or_else(|| format!("the weights have no tensor {name}"))
    }

    /// `nn.Conv2d(bias=False)` with a square kernel; the channel counts come from the weight.
    fn conv(
        &mut self,
        module: &str,
        input: &str,
        kernel: usize,
        stride: usize,
        pad: usize,
    ) -> Result<String, String> {
        let name = format!("{module}.weight");
        let total = self.channels(&name)?;
        let c_out = conv_out_channels(module)?;
        let c_in = total / (c_out * kernel * kernel);
        let w = self.weight(&name, &[c_out, c_in, kernel, kernel])?;
        let k = kernel as i64;
        let (s, p) = (stride as i64, pad as i64);
        Ok(self.node(
            "Conv",
            module,
            &[input, &w],
            vec![
                ints("dilations", &[1, 1]),
                int("group", 1),
                ints("kernel_shape", &[k, k]),
                ints("pads", &[p, p, p, p]),
                ints("strides", &[s, s]),
            ],
        ))
    }

    /// `nn.BatchNorm2d` in eval mode (running statistics, epsilon 1e-5).
    fn batch_norm(&mut self, module: &str, input: &str) -> Result<String, String> {
        let c = self.channels(&format!("{module}.weight"))?;
        let mut inputs = vec![input.to_string()];
        for field in ["weight", "bias", "running_mean", "running_var"] {
            inputs.push(self.weight(&format!("{module}.{field}"), &[c])?);
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        Ok(self.node(
            "BatchNormalization",
            module,
            &inputs,
            vec![float("epsilon", BN_EPSILON)],
        ))
    }

    fn relu(&mut self, module: &str, input: &str) -> String {
        self.node("Relu", module, &[input], vec![])
    }

    /// `nn.MaxPool2d(kernel_size=3, stride=2, padding=1)`.
    fn max_pool(&mut self, module: &str, input: &str) -> String {
        self.node(
            "MaxPool",
            module,
            &[input],
            vec![
                int("ceil_mode", 0),
                ints("kernel_shape", &[3, 3]),
                ints("pads", &[1, 1, 1, 1]),
                ints("strides", &[2, 2]),
            ],
        )
    }

    /// `nn.AvgPool2d(kernel_size=2, stride=2)`.
    fn avg_pool(&mut self, module: &str, input: &str) -> String {
        self.node(
            "AveragePool",
            module,
            &[input],
            vec![
                int("ceil_mode", 0),
                ints("kernel_shape", &[2, 2]),
                ints("pads", &[0, 0, 0, 0]),
                ints("strides", &[2, 2]),
            ],
        )
    }

    /// `torch.cat(features, 1)`.
    fn concat(&mut self, module: &str, inputs: &[String]) -> String {
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        self.node("Concat", module, &inputs, vec![int("axis", 1)])
    }

    /// `nn.Linear(1024, 1000)`: Gemm with the weight transposed, writing the graph's output.
    fn gemm(&mut self, module: &str, input: &str) -> Result<(), String> {
        let c_in = self.channels(&format!("{module}.weight"))? / CLASSES;
        let w = self.weight(&format!("{module}.weight"), &[CLASSES, c_in])?;
        let b = self.weight(&format!("{module}.bias"), &[CLASSES])?;
        self.nodes.push(NodeProto {
            op_type: "Gemm".into(),
            name: format!("{module}/Gemm"),
            input: vec![input.to_string(), w, b],
            output: vec![OUTPUT_NAME.to_string()],
            attribute: vec![float("alpha", 1.0), float("beta", 1.0), int("transB", 1)],
            ..NodeProto::default()
        });
        Ok(())
    }

    fn finish(self) -> ModelProto {
        let batch = || tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimParam(
                "batch".into(),
            )),
            ..Default::default()
        };
        let fixed = |n: usize| tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(n as i64)),
            ..Default::default()
        };
        let value_info = |name: &str, dims: Vec<tensor_shape_proto::Dimension>| ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: DataType::Float as i32,
                    shape: Some(TensorShapeProto { dim: dims }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let side = IMAGE_SIDE;
        ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            producer_name: env!("CARGO_PKG_NAME").into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: "torchvision densenet121 (growth 32, bn_size 4, blocks 6-12-24-16, \
                         64 initial features), built from a PyTorch checkpoint"
                .into(),
            graph: Some(GraphProto {
                name: "densenet121".into(),
                node: self.nodes,
                initializer: self.initializers,
                input: vec![value_info(
                    INPUT_NAME,
                    vec![batch(), fixed(3), fixed(side), fixed(side)],
                )],
                output: vec![value_info(OUTPUT_NAME, vec![batch(), fixed(CLASSES)])],
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// Output channels of a convolution, from its place in the architecture.
fn conv_out_channels(module: &str) -> Result<usize, String> {
    if module == "features.conv0" {
        return Ok(INIT_FEATURES);
    }
    if module.ends_with(".conv1") {
        return Ok(BN_SIZE * GROWTH_RATE);
    }
    if module.ends_with(".conv2") {
        return Ok(GROWTH_RATE);
    }
    if let Some(t) = module
        .strip_prefix("features.transition")
        .and_then(|rest| rest.strip_suffix(".conv"))
        .and_then(|n| n.parse::<usize>().ok())
    {
        let mut channels = INIT_FEATURES;
        for &layers in &BLOCK_CONFIG[..t] {
            channels = (channels + layers * GROWTH_RATE) / 2;
        }
        return Ok(channels);
    }
    Err(format!("{module} is not a DenseNet-121 convolution"))
}

fn attribute(name: &str, kind: AttributeType) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: kind as i32,
        ..AttributeProto::default()
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        i: value,
        ..attribute(name, AttributeType::Int)
    }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: values.to_vec(),
        ..attribute(name, AttributeType::Ints)
    }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        f: value,
        ..attribute(name, AttributeType::Float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_dict_has_torchvisions_606_tensors() {
        let params = parameters();
        assert_eq!(params.len(), 606);
        let count: usize = params
            .iter()
            .map(|p| p.shape.iter().product::<usize>())
            .sum();
        // torchvision's densenet121: 7,978,856 parameters and 83,648 running-statistics values
        // (sum(p.numel() for p in densenet121().parameters()), and the same for the buffers).
        assert_eq!(count, 7_978_856 + 83_648);
        assert_eq!(params[0].name, "features.conv0.weight");
        let last_conv = params
            .iter()
            .find(|p| p.name == "features.denseblock4.denselayer16.conv1.weight")
            .unwrap();
        assert_eq!(last_conv.shape, vec![128, 992, 1, 1]);
        let norm5 = params
            .iter()
            .find(|p| p.name == "features.norm5.running_var")
            .unwrap();
        assert_eq!(norm5.shape, vec![1024]);
        assert_eq!(params.last().unwrap().name, "classifier.bias");
    }

    #[test]
    fn transition_widths_halve_the_channels() {
        assert_eq!(conv_out_channels("features.transition1.conv"), Ok(128));
        assert_eq!(conv_out_channels("features.transition2.conv"), Ok(256));
        assert_eq!(conv_out_channels("features.transition3.conv"), Ok(512));
        assert!(conv_out_channels("features.nope").is_err());
    }

    #[test]
    fn the_graph_uses_every_weight_once() {
        let mut weights = Weights::new();
        for p in parameters() {
            let n = p.shape.iter().product();
            weights.insert(p.name, vec![0.0; n]);
        }
        let model = onnx_model(&weights).unwrap();
        let graph = model.graph.unwrap();
        assert_eq!(graph.initializer.len(), 606);
        let convs = graph.node.iter().filter(|n| n.op_type == "Conv").count();
        let bns = graph
            .node
            .iter()
            .filter(|n| n.op_type == "BatchNormalization")
            .count();
        // 1 stem + 2 per dense layer (58) + 3 transitions; 1 + 2 × 58 + 3 + norm5.
        assert_eq!(convs, 120);
        assert_eq!(bns, 121);
        assert_eq!(
            graph.node.last().unwrap().output,
            vec!["output".to_string()]
        );
    }

    #[test]
    fn a_missing_weight_is_named() {
        let err = onnx_model(&Weights::new()).unwrap_err();
        assert!(err.contains("features.conv0.weight"), "{err}");
    }
}
