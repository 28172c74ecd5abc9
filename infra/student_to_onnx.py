"""Export a published reelset student (tfjs layers model.json + weights.bin) to ONNX.

Called by `reelset models export` (cli/commands/models.ts, activities/models/export.ts), never by hand. Rebuilds the
Keras model from the tfjs topology in TensorFlow's Keras, loads the float32 weights by
name, converts it with tf2onnx, and writes two files:

- `<out>/student.onnx`: uint8 RGB pixels in (`pixels`, [N, size, size, 3], the
  preprocessed image of artifact.json; the graph casts them to float, and divides by 255
  for models of the first format, whose input range is [0, 1]), class probabilities out
  (`probabilities`, [N, classes]), the backbone's pooled features (`features`, [N, 1280])
  and, for models of the EfficientNet backbones, its ImageNet logits (`imagenet_logits`,
  [N, 1000]): both for the out-of-scope gate;
- `<out>/student-fp16.onnx`: the same graph with the convolution kernels stored as
  float16 and cast back to float32 when the session loads it (weights-only half
  precision: about half the file, the same arithmetic; the head stays float32).

    python student_to_onnx.py <model.json> <weights.bin> <opset> <out dir> <input range max: 255 or 1>

Prints one JSON line with the converter versions and the files.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import helper, numpy_helper, TensorProto  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402


def load(model_json: str, weights_bin: str) -> tf.keras.Model:
    with open(model_json) as f:
        mj = json.load(f)
    specs = mj.get("weightSpecs") or [w for g in mj["weightsManifest"] for w in g["weights"]]
    specs = [s for s in specs if s.get("group") != "optimizer"]
    flat = np.fromfile(weights_bin, dtype="<f4")
    weights, off = {}, 0
    for s in specs:
        if s.get("dtype", "float32") != "float32":
            raise SystemExit(f"weight {s['name']}: dtype {s['dtype']} (only float32 is exported)")
        n = int(np.prod(s["shape"])) if s["shape"] else 1
        weights[s["name"]] = flat[off : off + n].reshape(s["shape"])
        off += n
    topology = mj["modelTopology"]
    config = topology.get("model_config", topology)
    model = tf.keras.models.model_from_json(json.dumps(config))
    used = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        values = []
        for w in layer.weights:
            name = w.name.split(":")[0]
            if name not in weights:
                raise SystemExit(f"layer {layer.name}: no weight named {name} in weights.bin")
            values.append(weights[name])
            used.add(name)
        layer.set_weights(values)
    unused = sorted(set(weights) - used)
    if unused:
        raise SystemExit(f"{len(unused)} weights were not used, e.g. {unused[:3]}")
    return model


def rename_output(proto, old: str, new: str) -> None:
    for node in proto.graph.node:
        for i, o in enumerate(node.output):
            if o == old:
                node.output[i] = new
        for i, o in enumerate(node.input):
            if o == old:
                node.input[i] = new
    for o in proto.graph.output:
        if o.name == old:
            o.name = new


def uint8_input(proto, size: int, range_max: float) -> None:
    """The input becomes the RGB bytes (uint8, NHWC); the graph casts them and, for a [0, 1] model, divides by 255."""
    float_in = proto.graph.input[0].name
    pixels = helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["N", size, size, 3])
    if range_max == 255:
        prep = [helper.make_node("Cast", ["pixels"], [float_in], name="pixels_to_float", to=TensorProto.FLOAT)]
    else:
        scale = helper.make_tensor("pixels_scale", TensorProto.FLOAT, [], [255.0])
        prep = [
            helper.make_node("Cast", ["pixels"], ["pixels_float"], name="pixels_to_float", to=TensorProto.FLOAT),
            helper.make_node("Div", ["pixels_float", "pixels_scale"], [float_in], name="pixels_over_255"),
        ]
        proto.graph.initializer.append(scale)
    nodes = list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(prep + nodes)
    del proto.graph.input[:]
    proto.graph.input.extend([pixels])


def fp16_weights(proto):
    """A copy whose large kernels are stored as float16, each cast back to float32 by a Cast node:
    the convolution kernels (4-D float32 initializers) and the backbone's 1280x1000 ImageNet
    classifier (2-D, over 100,000 weights), together over 98% of the weights. The label head's
    dense kernels and every bias stay float32: the distilled head's margins are small, and its
    weights are a few KB."""
    p = onnx.ModelProto()
    p.CopyFrom(proto)
    g = p.graph
    casts, inits = [], []
    for init in g.initializer:
        a = numpy_helper.to_array(init)
        if init.data_type == TensorProto.FLOAT and (a.ndim == 4 or (a.ndim == 2 and a.size > 100_000)):
            half = numpy_helper.from_array(a.astype(np.float16), init.name + "_fp16")
            inits.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], name=init.name + "_to_fp32", to=TensorProto.FLOAT))
        else:
            inits.append(init)
    del g.initializer[:]
    g.initializer.extend(inits)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    return p


def main() -> None:
    model_json, weights_bin, opset, out, range_max = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
    model = load(model_json, weights_bin)
    size = int(model.input.shape[1])
    names = [layer.name for layer in model.layers]
    probs = model.outputs[0]
    features = model.get_layer("features" if "features" in names else "flatten_1").output
    outputs = [probs, features] + ([model.get_layer("imagenet_logits").output] if "imagenet_logits" in names else [])
    both = tf.keras.Model(model.input, outputs)
    spec = (tf.TensorSpec([None, size, size, 3], tf.float32, name="input"),)
    proto, _ = tf2onnx.convert.from_keras(both, input_signature=spec, opset=opset)
    out_names = ["probabilities", "features", "imagenet_logits"][: len(outputs)]
    old = [o.name for o in proto.graph.output]
    for o, n in zip(old, out_names):
        rename_output(proto, o, n)
    uint8_input(proto, size, range_max)
    proto.producer_name = "reelset infra/student_to_onnx.py (tf2onnx)"
    onnx.checker.check_model(proto)
    os.makedirs(out, exist_ok=True)
    f32 = os.path.join(out, "student.onnx")
    f16 = os.path.join(out, "student-fp16.onnx")
    onnx.save(proto, f32)
    half = fp16_weights(proto)
    onnx.checker.check_model(half)
    onnx.save(half, f16)
    print(json.dumps({
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "tf2onnx": tf2onnx.__version__,
        "onnx": onnx.__version__,
        "numpy": np.__version__,
        "opset": opset,
        "inputName": "pixels",
        "outputs": out_names,
        "files": {"float32": "student.onnx", "float16Weights": "student-fp16.onnx"},
    }))


if __name__ == "__main__":
    main()
