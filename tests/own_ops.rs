//! The project's own operators answer what tract's own operators answer for the nodes they
//! replace: dense blocks of random shapes, weights and batch-norm statistics, behind a stem
//! (convolution, batch norm, ReLU, max pool) of random shape or not (built as ONNX, so the
//! pattern is the one tract's importer makes), with every instruction set this CPU has, on one
//! thread and on two; and whole DenseNet-121 graphs.

mod common;

use densenet_lambda::model::decluttered_from_onnx;
use densenet_lambda::model::ops::isa::Isa;
use densenet_lambda::model::ops::stem::Window;
use densenet_lambda::model::ops::{self, Conv3x3Method, DenseBlocks, Options};
use densenet_lambda::weights::densenet::{onnx_model, parameters, Weights};
use prost::Message;
use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use tract_onnx::prelude::*;

/// A small deterministic generator (xorshift), so that every run tests the same cases.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `[lo, hi)`.
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
    /// Uniform in `lo..=hi`.
    fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    fn values(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// An ONNX graph under construction: nodes and weights, in the layout PyTorch exports.
struct Onnx {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    random: Random,
}

impl Onnx {
    fn new(seed: u64) -> Onnx {
        Onnx {
            nodes: vec![],
            initializers: vec![],
            random: Random(seed | 1),
        }
    }

    fn weight(&mut self, name: &str, shape: &[usize], values: Vec<f32>) -> String {
        self.initializers.push(TensorProto {
            name: name.into(),
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Float as i32,
            float_data: values,
            ..TensorProto::default()
        });
        name.into()
    }

    fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attributes: Vec<AttributeProto>,
    ) -> String {
        self.nodes.push(NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![name.into()],
            attribute: attributes,
            ..NodeProto::default()
        });
        name.into()
    }

    /// A batch norm with random statistics (what trained weights look like: every channel
    /// scaled and shifted).
    fn batch_norm(&mut self, name: &str, x: &str, channels: usize) -> String {
        let gamma = self.random.values(channels, 0.5, 1.5);
        let beta = self.random.values(channels, -0.5, 0.5);
        let mean = self.random.values(channels, -0.5, 0.5);
        let var = self.random.values(channels, 0.5, 1.5);
        let inputs = [
            x.to_string(),
            self.weight(&format!("{name}.weight"), &[channels], gamma),
            self.weight(&format!("{name}.bias"), &[channels], beta),
            self.weight(&format!("{name}.mean"), &[channels], mean),
            self.weight(&format!("{name}.var"), &[channels], var),
        ];
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let eps = AttributeProto {
            name: "epsilon".into(),
            r#type: AttributeType::Float as i32,
            f: 1e-5,
            ..AttributeProto::default()
        };
        self.node("BatchNormalization", name, &inputs, vec![eps])
    }

    /// A convolution of stride 1, padded to keep the size (a dense layer's or a transition's).
    fn conv(&mut self, name: &str, x: &str, inputs: usize, outputs: usize, side: usize) -> String {
        let window = Window {
            size: side,
            stride: 1,
            padding: side / 2,
        };
        self.strided_conv(name, x, inputs, outputs, window)
    }

    /// A convolution of any square window, stride and padding (a network's stem).
    fn strided_conv(
        &mut self,
        name: &str,
        x: &str,
        inputs: usize,
        outputs: usize,
        window: Window,
    ) -> String {
        let side = window.size;
        let bound = 1.0 / ((inputs * side * side) as f32).sqrt();
        let values = self
            .random
            .values(outputs * inputs * side * side, -bound, bound);
        let w = self.weight(
            &format!("{name}.weight"),
            &[outputs, inputs, side, side],
            values,
        );
        let (s, p) = (window.stride as i64, window.padding as i64);
        let attributes = vec![
            ints("kernel_shape", &[side as i64, side as i64]),
            ints("pads", &[p, p, p, p]),
            ints("strides", &[s, s]),
        ];
        self.node("Conv", name, &[x, &w], attributes)
    }

    /// A max pool; `ceil_mode` as ONNX has it.
    fn max_pool(&mut self, name: &str, x: &str, window: Window, ceil_mode: bool) -> String {
        let (k, s, p) = (
            window.size as i64,
            window.stride as i64,
            window.padding as i64,
        );
        let mut attributes = vec![
            ints("kernel_shape", &[k, k]),
            ints("pads", &[p, p, p, p]),
            ints("strides", &[s, s]),
        ];
        if ceil_mode {
            attributes.push(AttributeProto {
                name: "ceil_mode".into(),
                r#type: AttributeType::Int as i32,
                i: 1,
                ..AttributeProto::default()
            });
        }
        self.node("MaxPool", name, &[x], attributes)
    }

    /// A 2×2 average pool of stride 2.
    fn average_pool(&mut self, name: &str, x: &str) -> String {
        let attributes = vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])];
        self.node("AveragePool", name, &[x], attributes)
    }

    fn concat(&mut self, name: &str, xs: &[String]) -> String {
        let inputs: Vec<&str> = xs.iter().map(String::as_str).collect();
        let axis = AttributeProto {
            name: "axis".into(),
            r#type: AttributeType::Int as i32,
            i: 1,
            ..AttributeProto::default()
        };
        self.node("Concat", name, &inputs, vec![axis])
    }

    /// The model `input [1, c, h, w] → … → output`, decluttered as the service loads it.
    fn finish(self, output: &str, input_shape: [usize; 4]) -> TypedModel {
        let info = |name: &str, shape: &[usize]| ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: DataType::Float as i32,
                    shape: Some(TensorShapeProto {
                        dim: shape
                            .iter()
                            .map(|&d| tensor_shape_proto::Dimension {
                                value: Some(tensor_shape_proto::dimension::Value::DimValue(
                                    d as i64,
                                )),
                                ..Default::default()
                            })
                            .collect(),
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut nodes = self.nodes;
        nodes.last_mut().unwrap().output = vec!["output".into()];
        for node in &mut nodes {
            for i in &mut node.input {
                if i == output {
                    *i = "output".into();
                }
            }
        }
        let model = ModelProto {
            ir_version: 7,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(GraphProto {
                name: "test".into(),
                node: nodes,
                initializer: self.initializers,
                input: vec![info("input", &input_shape)],
                output: vec![ValueInfoProto {
                    name: "output".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        decluttered_dense(&model.encode_to_vec(), input_shape)
    }
}

/// An ONNX `ints` attribute.
fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..AttributeProto::default()
    }
}

/// Parses and declutters an ONNX model with the given input shape (the service's own
/// `decluttered_from_onnx` fixes the input to 224×224).
fn decluttered_dense(bytes: &[u8], shape: [usize; 4]) -> TypedModel {
    tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(bytes))
        .unwrap()
        .with_input_fact(0, f32::fact(shape).into())
        .unwrap()
        .into_typed()
        .unwrap()
        .into_decluttered()
        .unwrap()
}

/// Dense blocks of random shape: `layers` layers over a `channels × height × width` input, and
/// `blocks` of them with transitions between them (and after the last when `last_transition`).
struct Shape {
    channels: usize,
    height: usize,
    width: usize,
    layers: usize,
    bottleneck: usize,
    growth: usize,
    blocks: usize,
    last_transition: bool,
    /// The transitions' convolution before their pool (tract's graph rewrite pools first).
    conv_first: bool,
    /// A stem before the first block, and its input.
    stem: Option<StemShape>,
}

/// A stem: `input channels × height × width → convolution → batch norm → ReLU → max pool`,
/// whose output is the first block's input.
struct StemShape {
    channels: usize,
    height: usize,
    width: usize,
    conv: Window,
    pool: Window,
    ceil_mode: bool,
}

impl Shape {
    /// The model's input.
    fn input(&self) -> [usize; 4] {
        match &self.stem {
            Some(s) => [1, s.channels, s.height, s.width],
            None => [1, self.channels, self.height, self.width],
        }
    }
}

/// A random stem whose output is at least `min` pixels on each side, and that output's size.
fn random_stem(random: &mut Random, min: usize) -> (StemShape, usize, usize) {
    loop {
        // 3×3 to 7×7: tract makes a 1×1 convolution a matrix product, which the stem's pattern
        // does not read (no network has such a stem).
        let side = 2 * random.int(1, 3) + 1;
        let conv = Window {
            size: side,
            stride: random.int(1, 2),
            padding: random.int(0, side / 2),
        };
        let pool = Window {
            size: 3,
            stride: 2,
            padding: random.int(0, 1),
        };
        let (height, width) = (random.int(1, 60), random.int(1, 60));
        let out = |n: usize| pool.outputs(conv.outputs(n)?);
        if let (Some(h), Some(w)) = (out(height), out(width)) {
            if h >= min && w >= min {
                let stem = StemShape {
                    channels: random.int(1, 4),
                    height,
                    width,
                    conv,
                    pool,
                    ceil_mode: false,
                };
                return (stem, h, w);
            }
        }
    }
}

fn dense_block_model(shape: &Shape, seed: u64) -> TypedModel {
    let mut g = Onnx::new(seed);
    let mut x = "input".to_string();
    let mut channels = shape.channels;
    if let Some(stem) = &shape.stem {
        x = g.strided_conv("conv0", &x, stem.channels, channels, stem.conv);
        x = g.batch_norm("norm0", &x, channels);
        x = g.node("Relu", "relu0", &[&x], vec![]);
        x = g.max_pool("pool0", &x, stem.pool, stem.ceil_mode);
    }
    for b in 0..shape.blocks {
        let mut features = vec![x.clone()];
        for l in 0..shape.layers {
            let input = if l == 0 {
                features[0].clone()
            } else {
                g.concat(&format!("cat{b}_{l}"), &features)
            };
            let mut y = g.batch_norm(&format!("norm1_{b}_{l}"), &input, channels);
            y = g.node("Relu", &format!("relu1_{b}_{l}"), &[&y], vec![]);
            y = g.conv(&format!("conv1_{b}_{l}"), &y, channels, shape.bottleneck, 1);
            y = g.batch_norm(&format!("norm2_{b}_{l}"), &y, shape.bottleneck);
            y = g.node("Relu", &format!("relu2_{b}_{l}"), &[&y], vec![]);
            y = g.conv(
                &format!("conv2_{b}_{l}"),
                &y,
                shape.bottleneck,
                shape.growth,
                3,
            );
            features.push(y);
            channels += shape.growth;
        }
        x = g.concat(&format!("block{b}"), &features);
        if b + 1 < shape.blocks || shape.last_transition {
            let out = (channels / 2).max(1);
            let mut y = g.batch_norm(&format!("tnorm{b}"), &x, channels);
            y = g.node("Relu", &format!("trelu{b}"), &[&y], vec![]);
            if shape.conv_first {
                y = g.conv(&format!("tconv{b}"), &y, channels, out, 1);
                y = g.average_pool(&format!("tpool{b}"), &y);
            } else {
                y = g.average_pool(&format!("tpool{b}"), &y);
                y = g.conv(&format!("tconv{b}"), &y, channels, out, 1);
            }
            x = y;
            channels = out;
        }
    }
    g.finish(&x, shape.input())
}

fn input_for(shape: [usize; 4], seed: u64) -> Tensor {
    let mut random = Random(seed | 1);
    let n = shape.iter().product();
    Tensor::from_shape(&shape, &random.values(n, -2.0, 2.0)).unwrap()
}

fn run(model: &TypedModel, input: &Tensor) -> Vec<f32> {
    let plan = model
        .clone()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let out = plan.run(tvec!(input.clone().into())).unwrap();
    out[0]
        .try_as_plain_ram()
        .unwrap()
        .as_slice::<f32>()
        .unwrap()
        .to_vec()
}

/// Largest difference relative to the largest magnitude of `want`.
fn relative_error(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    common::max_abs(got, want) / scale
}

#[test]
fn dense_blocks_of_random_shapes_answer_as_tract_does() {
    let mut random = Random(0x5eed);
    for case in 0..24 {
        let blocks = random.int(1, 3);
        let last_transition = random.int(0, 1) == 1;
        // Room for each transition's halving (and odd sizes, which a pool's halving floors).
        let halvings = blocks - 1 + usize::from(last_transition);
        let mut height = random.int(1, 13) << halvings | random.int(0, 1);
        let mut width = random.int(1, 13) << halvings | random.int(0, 1);
        // Every other case behind a stem, whose output sets the blocks' size.
        let stem = (case % 2 == 1).then(|| {
            let (stem, h, w) = random_stem(&mut random, 1 << halvings);
            (height, width) = (h, w);
            stem
        });
        let shape = Shape {
            // Two channels at least: tract turns a 1×1 convolution of one channel into another
            // operation, which the pattern leaves to tract.
            channels: random.int(2, 40),
            height,
            width,
            layers: random.int(1, 4),
            bottleneck: random.int(1, 40),
            growth: random.int(1, 20),
            blocks,
            last_transition,
            conv_first: random.int(0, 1) == 1,
            stem,
        };
        let model = dense_block_model(&shape, 1000 + case);
        let input_shape = shape.input();
        let input = input_for(input_shape, case);
        let want = run(&model, &input);

        for method in [
            Conv3x3Method::Direct,
            Conv3x3Method::Winograd2,
            Conv3x3Method::Winograd4,
            Conv3x3Method::Auto,
        ] {
            let mut fused = model.clone();
            let options = Options {
                conv3x3: method,
                ..Options::default()
            };
            let done = ops::fuse_with(&mut fused, &options).unwrap();
            let stem = shape.stem.as_ref().map(|s| {
                format!(
                    "stem {}ch {}x{} conv {:?} pool {:?}, ",
                    s.channels, s.height, s.width, s.conv, s.pool
                )
            });
            let label = format!(
                "case {case} ({method:?}): {}{}ch {}x{}, {} blocks of {} layers, bottleneck {}, \
                 growth {}, last transition {}, conv first {}",
                stem.unwrap_or_default(),
                shape.channels,
                shape.height,
                shape.width,
                shape.blocks,
                shape.layers,
                shape.bottleneck,
                shape.growth,
                shape.last_transition,
                shape.conv_first,
            );
            assert_eq!(
                done.dense_blocks, shape.blocks,
                "{label}: not every block matched"
            );
            // One operator for the whole chain, transitions included.
            let ops: Vec<&DenseBlocks> = fused
                .nodes()
                .iter()
                .filter_map(|n| n.op_as::<DenseBlocks>())
                .collect();
            assert_eq!(ops.len(), 1, "{label}: {} operators", ops.len());
            let transitions = ops[0]
                .stages
                .iter()
                .filter(|s| s.transition.is_some())
                .count();
            let want_transitions = shape.blocks - 1 + usize::from(shape.last_transition);
            assert_eq!(transitions, want_transitions, "{label}");
            assert_eq!(done.stems, usize::from(shape.stem.is_some()), "{label}");
            assert_eq!(ops[0].stem.is_some(), shape.stem.is_some(), "{label}");
            let block = ops[0].clone();
            // The operator itself, with each instruction set.
            let x = input
                .try_as_plain_ram()
                .unwrap()
                .as_slice::<f32>()
                .unwrap()
                .to_vec();
            for isa in Isa::available() {
                let mut got = vec![f32::NAN; want.len()];
                block.run(isa, &x, &mut got);
                let error = relative_error(&got, &want);
                assert!(
                    error < 1e-5,
                    "{label}, {}: relative error {error}",
                    isa.name()
                );
            }
            // In the plan, on one thread and on two.
            let got = run(&fused, &input);
            assert!(relative_error(&got, &want) < 1e-5, "{label}: in the plan");
            let two = tract_linalg::multithread::Executor::multithread(2);
            let got =
                tract_linalg::multithread::multithread_tract_scope(two, || run(&fused, &input));
            assert!(relative_error(&got, &want) < 1e-5, "{label}: two threads");
        }
    }
}

#[test]
fn what_does_not_fit_the_pattern_is_left_to_tract() {
    // A layer output also read outside the block: the block cannot own it.
    let shape = Shape {
        channels: 8,
        height: 5,
        width: 6,
        layers: 2,
        bottleneck: 12,
        growth: 4,
        blocks: 1,
        last_transition: false,
        conv_first: false,
        stem: None,
    };
    let mut model = dense_block_model(&shape, 7);
    let y = model.node_by_name("conv2_0_0").map(|n| n.id);
    let y = match y {
        Ok(id) => OutletId::new(id, 0),
        // tract may have renamed it; take the first 3×3 convolution.
        Err(_) => {
            let id = model
                .nodes()
                .iter()
                .find(|n| n.op.name() == "Conv")
                .unwrap()
                .id;
            OutletId::new(id, 0)
        }
    };
    let outputs = [model.output_outlets().unwrap()[0], y];
    model.select_output_outlets(&outputs).unwrap();
    assert_eq!(ops::fuse(&mut model).unwrap().dense_blocks, 0);
}

#[test]
fn a_stem_whose_pool_rounds_up_is_left_to_tract() {
    // ONNX's `ceil_mode` adds a last, partial pool window: not what the stem computes. The
    // blocks still fuse; the stem stays tract's, and the answers agree.
    let stem = StemShape {
        channels: 3,
        height: 20,
        width: 18,
        conv: Window {
            size: 7,
            stride: 2,
            padding: 3,
        },
        pool: Window {
            size: 3,
            stride: 2,
            padding: 0,
        },
        ceil_mode: true,
    };
    let shape = Shape {
        channels: 8,
        height: 0,
        width: 0,
        layers: 2,
        bottleneck: 12,
        growth: 4,
        blocks: 1,
        last_transition: false,
        conv_first: false,
        stem: Some(stem),
    };
    let model = dense_block_model(&shape, 11);
    let input = input_for(shape.input(), 11);
    let want = run(&model, &input);
    let mut fused = model.clone();
    let done = ops::fuse(&mut fused).unwrap();
    assert_eq!((done.dense_blocks, done.stems), (1, 0));
    assert!(relative_error(&run(&fused, &input), &want) < 1e-5);
}

#[test]
fn densenet121_answers_as_tract_does() {
    // The reference tensor through DenseNet-121 as tract runs it alone and as the service runs
    // it: the shared untrained model (whose batch norms are near identities, folded away by
    // tract), and the same graph built from random weights with trained-like batch norms.
    let shared =
        std::fs::read(common::shared().join("model/densenet121_untrained_seed0.onnx")).unwrap();
    let mut random = Random(0xd15ea5e);
    let mut weights = Weights::new();
    for p in parameters() {
        let n: usize = p.shape.iter().product();
        let values = if p.name.ends_with("running_var")
            || p.name.ends_with("norm1.weight")
            || p.name.ends_with("norm2.weight")
            || p.name.ends_with("norm.weight")
            || p.name.ends_with("norm0.weight")
            || p.name.ends_with("norm5.weight")
        {
            random.values(n, 0.5, 1.5)
        } else if p.shape.len() == 4 || p.name == "classifier.weight" {
            let fan_in: usize = p.shape[1..].iter().product();
            let bound = (3.0 / fan_in as f32).sqrt();
            random.values(n, -bound, bound)
        } else {
            random.values(n, -0.3, 0.3)
        };
        weights.insert(p.name, values);
    }
    let trained_like = onnx_model(&weights).unwrap().encode_to_vec();
    let input = Tensor::from_shape(&[1, 3, 224, 224], &common::read_npy_f32("kitten.jpg")).unwrap();
    for (name, bytes) in [("shared", shared), ("trained-like", trained_like)] {
        let decluttered = decluttered_from_onnx(&bytes).unwrap();
        let want = run(&decluttered, &input);
        for method in [
            Conv3x3Method::Direct,
            Conv3x3Method::Winograd2,
            Conv3x3Method::Winograd4,
            Conv3x3Method::Auto,
        ] {
            let mut fused = decluttered.clone();
            let options = Options {
                conv3x3: method,
                ..Options::default()
            };
            let done = ops::fuse_with(&mut fused, &options).unwrap();
            assert_eq!(done.dense_blocks, 4, "{name}");
            assert_eq!(done.stems, 1, "{name}: the stem joins the operator");
            let ops = fused
                .nodes()
                .iter()
                .filter(|n| n.op_is::<DenseBlocks>())
                .count();
            assert_eq!(
                ops, 1,
                "{name}: the four blocks and three transitions as one operator"
            );
            let got = run(&fused, &input);
            let error = relative_error(&got, &want);
            eprintln!("{name}, {method:?}: logits' relative error {error:.2e}");
            assert!(error < 1e-4, "{name}, {method:?}: {error}");
        }
    }
}
