"""Read a `.keras` file's weights with h5py and NumPy alone, keyed by layer name.

Chat and one-shot replies decode with NumPy (see `chatbot.numpy_ops`), so they start in well under
a second instead of waiting ~3 s for TensorFlow to import. Keras stores each layer's variables
under `layers/<snake_case(class name)>[_N]/...`, numbered in the order of the model's layer list;
the same order is in the archive's config.json, so we can map those paths back to the layer
names we gave. A parity test against the Keras forward pass guards this mapping.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np

from chatbot.errors import ChatbotError

Weights = dict[str, list[np.ndarray]]  # layer name -> its variables, in layer.weights order

# Layer classes our architectures use. Anything else (a Lambda layer, a custom class from some
# other package) could carry code, and is refused before any weight is read.
ALLOWED_LAYERS = {
    ("keras.layers", name) for name in (
        "InputLayer", "Embedding", "LSTM", "Dense", "Dropout", "Attention", "Concatenate",
    )
} | {("keras.src.ops.numpy", "NotEqual")}  # the mask Embedding(mask_zero=True) computes


def read_keras_weights(path: str | Path) -> Weights:
    """Returns {layer name: [arrays]} for every layer of a functional `.keras` model."""
    import h5py  # a Keras dependency; imported here so `chatbot --help` stays instant

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            blob = archive.read("model.weights.h5")
    except FileNotFoundError:
        raise ChatbotError(f"{path}: missing; the run directory has no model") from None
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:  # ValueError: bad JSON
        raise ChatbotError(
            f"{path}: not a readable .keras model ({exc}); it may be half-written or damaged; "
            "retrain it with 'chatbot train'"
        ) from None

    inner = config.get("config") if isinstance(config, dict) else None
    layers = inner.get("layers") if isinstance(inner, dict) else None
    if not isinstance(layers, list) or not layers or not all(isinstance(x, dict) for x in layers):
        raise ChatbotError(f"{path}: holds no functional model; retrain it with 'chatbot train'")
    for layer in layers:
        kind = (layer.get("module"), layer.get("class_name"))
        if kind not in ALLOWED_LAYERS:
            raise ChatbotError(
                f"{path}: refused: layer {layer.get('name')!r} is a {kind[1]} from {kind[0]}, "
                "which no chatbot architecture uses and which could run code when loaded. "
                "Only load models you trained with 'chatbot train'"
            )
    used: dict[str, int] = {}
    out: Weights = {}
    try:
        with h5py.File(io.BytesIO(blob), "r") as h5:
            for layer in layers:
                key = _unique(_snake_case(layer["class_name"]), used)
                group = h5.get(f"layers/{key}")
                if group is not None:  # ops in the config (a mask's not_equal) have no weights
                    out[layer["name"]] = _collect(group)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ChatbotError(f"{path}: its weights cannot be read ({exc}); the file is damaged: "
                           "retrain the model") from None
    return out


def model_weights(model) -> Weights:
    """The same mapping, from a Keras model in memory (used while training)."""
    return {layer.name: [np.asarray(w.numpy()) for w in layer.weights] for layer in model.layers}


def _collect(group) -> list[np.ndarray]:
    """A layer's own `vars/0..n`, then those of its sub-objects (e.g. an LSTM's `cell`)."""
    arrays: list[np.ndarray] = []
    if "vars" in group:
        arrays += [np.asarray(group["vars"][k]) for k in sorted(group["vars"], key=int)]
    for name in group:
        if name != "vars":
            arrays += _collect(group[name])
    return arrays


def _snake_case(name: str) -> str:  # as keras.src.utils.naming.to_snake_case
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _unique(name: str, used: dict[str, int]) -> str:  # as keras saving_lib._get_unique_name
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name
