"""Every setting in one place: dataclasses with defaults, saved as `config.json` in a run.

A run directory is rebuilt from its `config.json` alone (with `vocab.json` and the model file),
so every field that changes how text is tokenized, how the model is shaped or how replies are
decoded lives here, with a default and a one-line comment.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chatbot.data.pairs import BAD_LINE_CHOICES
from chatbot.decoding.settings import DecodeConfig, check_decode
from chatbot.errors import ChatbotError
from chatbot.rundir import read_json, write_json
from chatbot.text.tokenizer import SUBWORD_MODELS, TOKENIZERS, TextConfig
from chatbot.training.distribute import STRATEGIES

# Bump when the meaning of config.json changes; older files still load, newer ones are refused.
FORMAT_VERSION = 1


@dataclass
class DataConfig:
    max_len: int = 40  # tokens kept per side (prompt or reply); longer sides are truncated
    min_count: int = 1  # word tokenizer: tokens seen fewer times than this become <UNK>
    max_vocab: int = 20000  # word tokenizer: cap on vocabulary size, specials included
    val_fraction: float = 0.05  # share of pairs held out for validation (0 disables it)
    on_bad_lines: str = "error"  # "error" stops at the first bad line, "skip" skips and counts
    path: str = ""  # the TSV this run was trained on, recorded so --resume can find it again
    text: list[str] = field(default_factory=list)  # `chatbot pretrain`: the text files read
    # Turns the model reads before each reply: the prompt and up to N - 1 turns before it, at
    # most N * max_len tokens (chatbot.text.context); 1 answers each prompt on its own.
    context_turns: int = 1


@dataclass
class ModelConfig:
    arch: str = "lstm"  # one of models.ARCHS; "lstm": Embedding -> LSTM -> TimeDistributed(Dense)
    embedding_dim: int = 128  # size of each token's embedding vector (transformer: model width)
    hidden_dim: int = 384  # LSTM units (transformer: feed-forward width)
    num_layers: int = 1  # stacked LSTM layers (transformer: blocks)
    dropout: float = 0.0  # dropout on embeddings and layer outputs while training
    num_heads: int = 4  # transformer: attention heads, each embedding_dim / num_heads wide
    max_positions: int = 0  # transformer: longest sequence; 0: 2 * max_len + 2, set at training
    vocab_size: int = 0  # filled in from the vocabulary when training starts


OPTIMIZERS = ("adam", "rmsprop")  # compile_model maps each name to its Keras optimizer
# What the best checkpoint and early stopping watch: losses fall, accuracies rise
# (chatbot.training.callbacks.Monitor); "val_" ones need validation pairs.
MONITORS = ("loss", "masked_accuracy", "val_loss", "val_masked_accuracy")


def higher_is_better(monitor: str) -> bool:
    """The one rule for every monitored quantity: accuracies improve by rising, losses by
    falling (the best checkpoint, early stopping and the best epoch of a plot all use it)."""
    return monitor.endswith("accuracy")


@dataclass
class TrainConfig:
    epochs: int = 30  # upper bound; early stopping may end sooner
    batch_size: int = 32  # pairs per batch
    optimizer: str = "adam"  # one of OPTIMIZERS
    learning_rate: float = 5e-3  # optimizer step size
    clipnorm: float = 1.0  # gradient norm clipping keeps LSTM training stable
    monitor: str = "loss"  # one of MONITORS: quantity for best checkpoint and early stopping
    patience: int = 5  # epochs without improvement before stopping
    bucket_by_length: bool = True  # batch pairs of similar length so little compute is padding
    seed: int = 1234  # seeds the split, shuffling and initial weights
    probes: int = 3  # training prompts whose replies are printed after every epoch
    strategy: str = "default"  # one of distribute.STRATEGIES: default, mirrored or multiworker
    noise_copies: int = 4  # noisy copies of each training prompt (chatbot.data.noise), same reply
    max_minutes: float = 0.0  # stop after the epoch that ends past this many minutes (0: no limit)


@dataclass
class RunConfig:
    text: TextConfig = field(default_factory=TextConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> RunConfig:
        if not isinstance(raw, dict):
            raise ChatbotError(f"{source}: expected a JSON object, found {type(raw).__name__}; "
                               "the file is damaged: retrain the model")
        version = raw.get("format_version", FORMAT_VERSION)
        if not _is_int(version) or version < 1:
            raise ChatbotError(f"{source}: format_version must be a whole number, found "
                               f"{version!r}; the file is damaged: retrain the model")
        if version > FORMAT_VERSION:
            raise ChatbotError(
                f"{source}: format_version {version!r} is newer than this chatbot understands "
                f"({FORMAT_VERSION}); upgrade the chatbot package to use this model"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown_sections = sorted(set(raw) - names)
        if unknown_sections:
            raise ChatbotError(
                f"{source}: unknown section(s) {', '.join(unknown_sections)}; "
                f"known: {', '.join(sorted(names))}"
            )
        sections = {}
        for f in dataclasses.fields(cls):
            if f.name == "format_version":
                continue
            section_cls = f.default_factory  # type: ignore[misc]
            values = raw.get(f.name, {})
            if not isinstance(values, dict):
                raise ChatbotError(f"{source}: '{f.name}' must be an object")
            known = {sf.name for sf in dataclasses.fields(section_cls)}
            unknown = sorted(set(values) - known)
            if unknown:
                raise ChatbotError(
                    f"{source}: unknown setting(s) {', '.join(f'{f.name}.{u}' for u in unknown)}; "
                    f"known: {', '.join(sorted(known))}"
                )
            for sf in dataclasses.fields(section_cls):
                if sf.name in values:
                    _check_value(f"{f.name}.{sf.name}", sf.type, values[sf.name], source)
            sections[f.name] = section_cls(**values)
        try:
            check_decode(sections["decode"], by_field=True)
        except ChatbotError as exc:
            raise ChatbotError(f"{source}: decode.{exc}; fix the file or retrain the model") \
                from None
        return cls(**sections, format_version=version)

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        return cls.from_dict(read_json(path), source=str(path))


# Settings that must be at least 1 (a zero or negative value cannot describe a model or a run).
_POSITIVE = {"max_len", "max_vocab", "min_count", "embedding_dim", "hidden_dim", "num_layers",
             "num_heads", "context_turns",
             "epochs", "batch_size", "subword_vocab"}
# Settings that name one of a list, each list defined where its names are implemented.
CHOICES = {"data.on_bad_lines": BAD_LINE_CHOICES, "train.optimizer": OPTIMIZERS,
           "train.monitor": MONITORS, "train.strategy": STRATEGIES,
           "text.tokenizer": TOKENIZERS, "text.subword_model": SUBWORD_MODELS}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_value(name: str, annotation: str, value: Any, source: str) -> None:
    """Refuses a setting of the wrong type or out of range, naming it and the file."""
    checks = {"int": _is_int, "float": lambda v: _is_int(v) or isinstance(v, float),
              "bool": lambda v: isinstance(v, bool), "str": lambda v: isinstance(v, str),
              "list[str]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)}
    optional = annotation.endswith("| None")
    kind = annotation.removesuffix("| None").strip()
    ok = (optional and value is None) or checks[kind](value)
    if ok and name.rsplit(".", 1)[1] in _POSITIVE:
        ok = value >= 1
    if ok and kind == "float" and name.endswith(("dropout", "val_fraction")):
        ok = 0 <= value < 1
    if ok and name.endswith("max_minutes"):
        ok = value >= 0
    if not ok:
        expected = {"int": "a whole number", "float": "a number", "bool": "true or false",
                    "str": "a string", "list[str]": "a list of strings"}[kind]
        limit = " of at least 1" if name.rsplit(".", 1)[1] in _POSITIVE else ""
        raise ChatbotError(f"{source}: {name} must be {expected}{limit}, found {value!r}; fix "
                           "the file or retrain the model")
    if name in CHOICES and value not in CHOICES[name]:
        raise ChatbotError(f"{source}: {name} is {value!r}; choose one of: "
                           f"{', '.join(CHOICES[name])}")


# Named starting points for `chatbot train --preset NAME`; flags given on the command line win.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Sized so `make train` learns the default corpus by heart in a few minutes on 2 CPU cores,
    # and its prompts as people type them (noise_copies), not only as they are written.
    "default": {},
    # The settings of the article this project started from.
    "article": {
        "data": {"max_len": 40},
        "model": {"embedding_dim": 64, "hidden_dim": 128},
        "train": {"batch_size": 32, "optimizer": "rmsprop", "learning_rate": 1e-3,
                  "monitor": "val_loss", "noise_copies": 0},
    },
    # The decoder-only Transformer (chatbot/models/transformer.py), sized like the default
    # LSTM's parameter count and trained in the same few minutes.
    "transformer": {
        "model": {"arch": "transformer", "embedding_dim": 128, "hidden_dim": 512,
                  "num_layers": 2, "num_heads": 4},
        "train": {"learning_rate": 1e-3},
    },
    # A few seconds of training: for trying the pipeline end to end, not for good replies.
    "tiny": {
        "model": {"embedding_dim": 32, "hidden_dim": 64},
        "train": {"epochs": 5, "noise_copies": 0},
    },
}


def preset(name: str) -> RunConfig:
    """Returns the RunConfig of a named preset."""
    if name not in PRESETS:
        raise ChatbotError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return RunConfig.from_dict(PRESETS[name], source=f"preset {name!r}")
