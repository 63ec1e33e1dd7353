#!/usr/bin/env python3
"""Export torchvision's DenseNet-121 to ONNX, the file this function loads: the Python route.

(The Rust route needs no Python: `densenet-lambda fetch-model` downloads the same checkpoint and
builds the model, and `densenet-lambda import-weights WEIGHTS.pth OUT` does it from a file.)

Needs:

    pip install torch torchvision onnx onnxscript onnxruntime

(onnxscript: the exporter of current PyTorch needs it; onnxruntime: only for the final check,
skipped when missing.) Usage:

    python3 model/export_densenet121.py [--weights PATH.pth] [OUTPUT.onnx]

Without --weights, torchvision downloads its published ImageNet weights (densenet121-a639ec97.pth,
needs internet; cached in ~/.cache/torch/hub/checkpoints). With --weights, the checkpoint is read
from the file: torchvision's own (legacy names such as `denselayer1.norm.1.weight` are renamed
the way torchvision's loader renames them) or any `torch.save(model.state_dict())` of a
densenet121. Writes model/densenet121.onnx by default.

The export matches the function's contract: input `input` float32 [N,3,224,224] (the tutorial's
normalised tensor), output `output` float32 [N,1000] logits in ImageNet class order, dynamic batch
axis. It works on old and current PyTorch: the TorchScript exporter (before torch 2.9) writes
opset 13; the dynamo exporter (the default since torch 2.9) is asked for opset 18 and puts the
weights in a side file (OUTPUT.onnx.data), which this script folds back in, so the result is
always ONE self-contained file (the binary's embedding needs that). It then checks the file with
onnx.checker and, with onnxruntime, against PyTorch on a random batch of two.
"""
import argparse
import inspect
import os
import re
import sys

import onnx
import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 13  # the TorchScript exporter's opset (older PyTorch)
DYNAMO_OPSET = 18  # the dynamo exporter's lowest opset, and the newest tract 0.23 is tested against
# torchvision's densenet._load_state_dict: legacy names `…denselayerN.norm.1.weight` → `…norm1.weight`.
LEGACY_NAME = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def load_model(weights_path):
    """torchvision's densenet121 in eval mode, with published or local weights."""
    if weights_path is None:
        if hasattr(torchvision.models, "DenseNet121_Weights"):  # torchvision >= 0.13
            weights = torchvision.models.DenseNet121_Weights.IMAGENET1K_V1  # densenet121-a639ec97.pth
            return torchvision.models.densenet121(weights=weights).eval()
        return torchvision.models.densenet121(pretrained=True).eval()
    try:
        state_dict = torch.load(weights_path, map_location="cpu", weights_only=True)
    except TypeError:  # torch < 1.13 has no weights_only
        state_dict = torch.load(weights_path, map_location="cpu")
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], dict):
        state_dict = state_dict["state_dict"]
    for key in list(state_dict.keys()):
        match = LEGACY_NAME.match(key)
        if match:
            state_dict[match.group(1) + match.group(2)] = state_dict.pop(key)
    model = torchvision.models.densenet121()
    model.load_state_dict(state_dict)
    return model.eval()


def export(model, out):
    """torch.onnx.export with whichever exporter this PyTorch has; returns the opset written."""
    example = torch.randn(1, 3, 224, 224)
    kwargs = dict(input_names=["input"], output_names=["output"])
    params = inspect.signature(torch.onnx.export).parameters
    if "dynamo" in params and params["dynamo"].default is True:
        # torch >= 2.9: the dynamo exporter (torch.export + onnxscript), with the batch axis
        # declared on the traced program. It writes opset 18 or later (torch 2.15: 20 by
        # default); ask for 18, the newest tract is tested against, and take its own choice
        # if this torch cannot write 18.
        batch = torch.export.Dim("batch", min=1, max=1024)
        dynamo = dict(dynamic_shapes=({0: batch},), **kwargs)
        try:
            torch.onnx.export(model, (example,), out, opset_version=DYNAMO_OPSET, **dynamo)
        except Exception as e:  # noqa: BLE001 - any converter failure: fall back to the default opset
            print(f"opset {DYNAMO_OPSET} export failed ({e}); exporting with this torch's default opset")
            torch.onnx.export(model, (example,), out, **dynamo)
    else:
        # The TorchScript exporter: opset 13, the contract's opset; one file below 2 GB.
        torch.onnx.export(
            model, example, out,
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            opset_version=OPSET, do_constant_folding=True, **kwargs,
        )


def drop_value_info(out):
    """Removes the shape annotations of intermediate values (graph.value_info).

    The dynamo exporter annotates every intermediate tensor with the symbolic batch axis
    (`batch,64,112,112`); a runtime that fixes the batch to 1, as this function does, would have
    to reconcile each of them. Every runtime infers these shapes itself, so they are dropped.
    """
    model = onnx.load(out)
    if len(model.graph.value_info):
        del model.graph.value_info[:]
        onnx.save(model, out)


def inline_external_data(out):
    """Folds weights kept in side files (external data) back into `out`; returns the side files removed."""
    head = onnx.load(out, load_external_data=False)
    side_files = set()
    for tensor in head.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                side_files.add(os.path.join(os.path.dirname(os.path.abspath(out)), entry.value))
    if not side_files:
        return []
    model = onnx.load(out)  # reads the side files
    for tensor in model.graph.initializer:
        # onnx.load has copied the bytes in; mark each tensor as stored inline again.
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT
    onnx.save(model, out)
    for path in side_files:
        os.remove(path)
    return sorted(side_files)


def check(model, out):
    model_proto = onnx.load(out)
    onnx.checker.check_model(model_proto)
    opset = next(o.version for o in model_proto.opset_import if o.domain in ("", "ai.onnx"))
    names = ([i.name for i in model_proto.graph.input], [o.name for o in model_proto.graph.output])
    dims = [d.dim_param or d.dim_value for d in model_proto.graph.input[0].type.tensor_type.shape.dim]
    print(f"opset {opset}, inputs/outputs {names}, input shape {dims}")
    if names != (["input"], ["output"]) or isinstance(dims[0], int) or dims[1:] != [3, 224, 224]:
        sys.exit("the export does not match the function's contract (input [batch,3,224,224], output)")
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed: skipped the numerical check")
        return
    example = torch.randn(2, 3, 224, 224)
    got = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, {"input": example.numpy()})[0]
    with torch.no_grad():
        want = model(example).numpy()
    print(f"onnxruntime vs torch, batch of 2: max abs logit difference {np.abs(got - want).max():.2e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output", nargs="?", default=os.path.join(HERE, "densenet121.onnx"),
                        help="where to write the ONNX file (default: model/densenet121.onnx)")
    parser.add_argument("--weights", metavar="PATH.pth",
                        help="a local DenseNet-121 checkpoint instead of torchvision's download")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, onnx {onnx.__version__}")
    model = load_model(args.weights)
    export(model, args.output)
    removed = inline_external_data(args.output)
    if removed:
        print(f"folded the external data of {', '.join(os.path.basename(p) for p in removed)} into {args.output}")
    drop_value_info(args.output)
    check(model, args.output)
    print(f"wrote {args.output} ({os.path.getsize(args.output):,} bytes, self-contained)")


if __name__ == "__main__":
    main()
