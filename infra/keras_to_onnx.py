"""Convert one nsfwjs Keras backbone to ONNX, cut at its feature layer.

Called by infra/convert-backbones.ts (never by hand): it writes a directory holding
`topology.json` (the Keras model config nsfwjs ships, keras 2.2.4 format), `weights.json`
(names and shapes) and `weights.f32` (the weights dequantised exactly as tfjs does), and
this script rebuilds the Keras model in TensorFlow's Keras, loads the weights by name,
cuts it at the feature layer and converts it with tf2onnx.

    python keras_to_onnx.py <in dir> <feature layer> <input size> <opset> <out.onnx>

Prints one JSON line with the converter versions (read back as provenance).
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402


def canonicalize(graph) -> None:
    """Name every initializer after the first node input that reads it, in node order.

    tf2onnx deduplicates equal constants (Relu6 bounds, pad values) and keeps one of them
    under whichever name it met first, which varies from run to run; renaming by first
    use makes the file a function of the model alone (two conversions give one sha256).
    """
    inits = {i.name: i for i in graph.initializer}
    rename = {}
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name in inits and name not in rename:
                rename[name] = f"{node.name}:in{k}"
    if len(rename) != len(inits):
        raise SystemExit(f"{len(inits) - len(rename)} initializers are used by no node")
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name in rename:
                node.input[k] = rename[name]
    ordered = []
    for old, new in rename.items():
        t = inits[old]
        t.name = new
        ordered.append(t)
    del graph.initializer[:]
    graph.initializer.extend(ordered)


def main() -> None:
    src, feature_layer, size, opset, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    with open(os.path.join(src, "topology.json")) as f:
        topology = json.load(f)
    with open(os.path.join(src, "weights.json")) as f:
        specs = json.load(f)
    flat = np.fromfile(os.path.join(src, "weights.f32"), dtype="<f4")
    weights = {}
    off = 0
    for s in specs:
        n = int(np.prod(s["shape"])) if s["shape"] else 1
        weights[s["name"]] = flat[off : off + n].reshape(s["shape"])
        off += n
    if off != flat.size:
        raise SystemExit(f"weights.f32 holds {flat.size} values, the specs {off}")

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
                raise SystemExit(f"layer {layer.name}: no weight named {name} in the nsfwjs weights")
            values.append(weights[name])
            used.add(name)
        layer.set_weights(values)
    unused = sorted(set(weights) - used)
    if unused:
        raise SystemExit(f"{len(unused)} nsfwjs weights were not used, e.g. {unused[:3]}")

    features = tf.keras.Model(model.input, model.get_layer(feature_layer).output)
    spec = (tf.TensorSpec([None, size, size, 3], tf.float32, name="input"),)
    proto, _ = tf2onnx.convert.from_keras(features, input_signature=spec, opset=opset)
    # Stable names for the runtime: input `pixels`, output `features`.
    old_out = proto.graph.output[0].name
    for node in proto.graph.node:
        for i, o in enumerate(node.output):
            if o == old_out:
                node.output[i] = "features"
    proto.graph.output[0].name = "features"
    # The input becomes the RGB bytes themselves (uint8, NHWC): the graph divides by 255,
    # so callers pass decoded pixels without a float conversion of their own.
    float_in = proto.graph.input[0].name
    pixels = onnx.helper.make_tensor_value_info("pixels", onnx.TensorProto.UINT8, ["N", size, size, 3])
    scale = onnx.helper.make_tensor("pixels_scale", onnx.TensorProto.FLOAT, [], [255.0])
    prep = [
        onnx.helper.make_node("Cast", ["pixels"], ["pixels_float"], name="pixels_to_float", to=onnx.TensorProto.FLOAT),
        onnx.helper.make_node("Div", ["pixels_float", "pixels_scale"], [float_in], name="pixels_over_255"),
    ]
    graph_nodes = list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(prep + graph_nodes)
    proto.graph.initializer.append(scale)
    del proto.graph.input[:]
    proto.graph.input.extend([pixels])
    canonicalize(proto.graph)
    proto.producer_name = "reelset infra/convert-backbones.ts (tf2onnx)"
    onnx.checker.check_model(proto)
    onnx.save(proto, out)
    print(json.dumps({
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": tf.keras.__version__ if hasattr(tf.keras, "__version__") else None,
        "tf2onnx": tf2onnx.__version__,
        "onnx": onnx.__version__,
        "numpy": np.__version__,
        "opset": opset,
        "inputName": "pixels",
        "outputName": "features",
    }))


if __name__ == "__main__":
    main()
