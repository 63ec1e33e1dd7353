#!/usr/bin/env python3
"""Export torchvision's published DenseNet-121 ImageNet weights to ONNX, the file this function loads.

Needs internet access (torchvision downloads densenet121-a639ec97.pth on first use) and
`pip install torch torchvision onnx`. Writes model/densenet121.onnx by default:

    python3 model/export_densenet121.py [OUTPUT.onnx]

The export matches the function's contract: input `input` float32 [N,3,224,224] (the tutorial's
normalised tensor), output `output` float32 [N,1000] logits in ImageNet class order, opset 13,
dynamic batch axis. It then checks the export against PyTorch on a random input.
"""
import os
import sys

import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "densenet121.onnx")
    weights = torchvision.models.DenseNet121_Weights.IMAGENET1K_V1  # densenet121-a639ec97.pth
    model = torchvision.models.densenet121(weights=weights).eval()
    example = torch.randn(1, 3, 224, 224)
    torch.onnx.export(
        model, example, out,
        input_names=["input"], output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        opset_version=13, do_constant_folding=True,
    )
    try:
        import numpy as np
        import onnxruntime as ort
        got = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, {"input": example.numpy()})[0]
        with torch.no_grad():
            want = model(example).numpy()
        print(f"onnxruntime vs torch: max abs logit difference {np.abs(got - want).max():.2e}")
    except ImportError:
        print("onnxruntime not installed: skipped the numerical check")
    print(f"wrote {out} ({os.path.getsize(out):,} bytes)")


if __name__ == "__main__":
    main()
