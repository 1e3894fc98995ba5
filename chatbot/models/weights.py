"""Read a `.keras` file's weights with h5py and NumPy alone, keyed by layer name and path.

Chat and one-shot replies decode with NumPy (see `chatbot.models.kernels`), so they start in well
under a second instead of waiting ~3 s for TensorFlow to import. Keras stores each layer's variables
under `layers/<snake_case(class name)>[_N]/...`, numbered in the order of the model's layer list;
the same order is in the archive's config.json, so we can map those groups back to the layer
names we gave. Inside a layer's group every array keeps its path (`vars/0`, `cell/vars/1`,
`query_dense/vars/0`): see `chatbot.models.base.Weights`. The contract tests compare what this
module reads with the Keras forward pass of every architecture.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from chatbot.errors import ChatbotError
from chatbot.models import ARCHS
from chatbot.models.base import LEGACY_LAYER_NAMES, Weights

# Layer classes our architectures use (each registry line may add its own, Arch.layers).
# Anything else (a Lambda layer, a custom class from some other package) could carry code, and
# is refused before any weight is read.
ALLOWED_LAYERS = {
    ("keras.layers", name) for name in (
        "InputLayer", "Embedding", "LSTM", "Dense", "Dropout", "Attention", "Concatenate",
        "LayerNormalization", "MultiHeadAttention", "Add",
        *(layer for arch in ARCHS.values() for layer in arch.layers),
    )
} | {
    ("keras.src.ops.numpy", "NotEqual"),  # the mask Embedding(mask_zero=True) computes
    ("chatbot.models.layers", "PositionEmbedding"),  # our own layers, and nothing else
}


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
    try:
        return _read_h5(h5py.File(io.BytesIO(blob), "r"),
                        [(layer["name"], layer["class_name"]) for layer in layers])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ChatbotError(f"{path}: its weights cannot be read ({exc}); the file is damaged: "
                           "retrain the model") from None


def model_weights(model) -> Weights:
    """The same mapping, from a Keras model in memory (used while training).

    The model's weights go through Keras' own weights file, so the paths are exactly those
    that `read_keras_weights` finds in the `.keras` file of the same model.
    """
    import h5py

    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "model.weights.h5"
        model.save_weights(file)
        with h5py.File(file, "r") as h5:
            return _read_h5(h5, [(layer.name, type(layer).__name__) for layer in model.layers])


def _read_h5(h5, layers: list[tuple[str, str]]) -> Weights:
    """{layer name: {path: array}} from a Keras weights file, given the model's layers in order
    as (name, class name)."""
    used: dict[str, int] = {}
    out: Weights = {}
    with h5:
        for name, class_name in layers:
            group = h5.get(f"layers/{_unique(_snake_case(class_name), used)}")
            arrays = _arrays(group) if group is not None else {}  # ops (not_equal) have none
            if arrays:  # layers without variables (inputs, dropout) are left out
                out[LEGACY_LAYER_NAMES.get(name, name)] = arrays
    return out


def _arrays(group) -> dict[str, np.ndarray]:
    """Every dataset under an h5 group, keyed by its path inside the group."""
    found: dict[str, np.ndarray] = {}

    def visit(path: str, item) -> None:
        if hasattr(item, "shape"):  # a dataset, not a group
            found[path] = np.asarray(item)

    group.visititems(visit)
    return found


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
