"""Every setting in one place: dataclasses with defaults, saved as `config.json` in a run.

A run directory is rebuilt from its `config.json` alone (with `vocab.json` and the model file),
so every field that changes how text is tokenized, how the model is shaped or how replies are
decoded lives here, with a default and a one-line comment.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chatbot.errors import ChatbotError

# Bump when the meaning of config.json changes; older files still load, newer ones are refused.
FORMAT_VERSION = 1


@dataclass
class TextConfig:
    lowercase: bool = True  # fold case before tokenizing; "Hello" and "hello" become one token


@dataclass
class DataConfig:
    max_len: int = 40  # tokens kept per side (prompt or reply); longer sides are truncated
    min_count: int = 1  # tokens seen fewer times than this become <UNK>
    max_vocab: int = 20000  # cap on vocabulary size, specials included
    val_fraction: float = 0.05  # share of pairs held out for validation (0 disables it)
    on_bad_lines: str = "error"  # "error" stops at the first bad line, "skip" skips and counts
    path: str = ""  # the TSV this run was trained on, recorded so --resume can find it again


@dataclass
class ModelConfig:
    arch: str = "lstm"  # "lstm": Embedding -> LSTM -> TimeDistributed(Dense) language model
    embedding_dim: int = 128  # size of each token's embedding vector
    hidden_dim: int = 384  # LSTM units
    num_layers: int = 1  # stacked LSTM layers
    dropout: float = 0.0  # dropout on embeddings and LSTM outputs while training
    vocab_size: int = 0  # filled in from the vocabulary when training starts


@dataclass
class TrainConfig:
    epochs: int = 30  # upper bound; early stopping may end sooner
    batch_size: int = 32  # pairs per batch
    optimizer: str = "adam"  # "adam" or "rmsprop"
    learning_rate: float = 5e-3  # optimizer step size
    clipnorm: float = 1.0  # gradient norm clipping keeps LSTM training stable
    monitor: str = "loss"  # quantity for best checkpoint and early stopping
    patience: int = 5  # epochs without improvement before stopping
    bucket_by_length: bool = True  # batch pairs of similar length so little compute is padding
    seed: int = 1234  # seeds the split, shuffling and initial weights
    probes: int = 3  # training prompts whose replies are printed after every epoch
    strategy: str = "default"  # default, mirrored or multiworker (see chatbot/distribute.py)


DECODE_STRATEGIES = ("greedy", "beam", "random", "top_k", "top_p")


@dataclass
class DecodeConfig:
    strategy: str = "greedy"  # greedy, beam, random (temperature only), top_k or top_p
    max_reply_len: int = 40  # stop after this many reply tokens if <EOS> has not come
    min_len: int = 0  # <EOS> is not allowed before this many reply tokens
    beam_width: int = 5  # hypotheses kept by beam search
    length_penalty: float = 1.0  # beam scores are logprob / length ** length_penalty
    nbest: int = 1  # candidates returned (beam search only)
    temperature: float = 1.0  # logits are divided by this before sampling; <1 is bolder
    top_k: int = 10  # top_k: sample among the k most probable tokens
    top_p: float = 0.9  # top_p: sample among the fewest tokens whose probability reaches p
    no_repeat_ngram: int = 0  # if n > 0, never repeat an n-gram within a reply
    allow_unk: bool = False  # whether <UNK> may be generated
    seed: int | None = None  # fixes sampling for reproducible replies


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
        return cls(**sections, format_version=version)

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        return cls.from_dict(read_json(path), source=str(path))


# Settings that must be at least 1 (a zero or negative value cannot describe a model or a run).
_POSITIVE = {"max_len", "max_vocab", "min_count", "embedding_dim", "hidden_dim", "num_layers",
             "epochs", "batch_size", "max_reply_len", "beam_width", "nbest", "top_k"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_value(name: str, annotation: str, value: Any, source: str) -> None:
    """Refuses a setting of the wrong type or out of range, naming it and the file."""
    checks = {"int": _is_int, "float": lambda v: _is_int(v) or isinstance(v, float),
              "bool": lambda v: isinstance(v, bool), "str": lambda v: isinstance(v, str)}
    optional = annotation.endswith("| None")
    kind = annotation.removesuffix("| None").strip()
    ok = (optional and value is None) or checks[kind](value)
    if ok and name.rsplit(".", 1)[1] in _POSITIVE:
        ok = value >= 1
    if ok and kind == "float" and name.endswith(("dropout", "val_fraction")):
        ok = 0 <= value < 1
    if not ok:
        expected = {"int": "a whole number", "float": "a number", "bool": "true or false",
                    "str": "a string"}[kind]
        limit = " of at least 1" if name.rsplit(".", 1)[1] in _POSITIVE else ""
        raise ChatbotError(f"{source}: {name} must be {expected}{limit}, found {value!r}; fix "
                           "the file or retrain the model")


# Named starting points for `chatbot train --preset NAME`; flags given on the command line win.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Sized so `make train` learns the default corpus by heart in a few minutes on 2 CPU cores.
    "default": {},
    # The settings of the article this project started from.
    "article": {
        "data": {"max_len": 40},
        "model": {"embedding_dim": 64, "hidden_dim": 128},
        "train": {"batch_size": 32, "optimizer": "rmsprop", "learning_rate": 1e-3,
                  "monitor": "val_loss"},
    },
    # A few seconds of training: for trying the pipeline end to end, not for good replies.
    "tiny": {
        "model": {"embedding_dim": 32, "hidden_dim": 64},
        "train": {"epochs": 5},
    },
}


def preset(name: str) -> RunConfig:
    """Returns the RunConfig of a named preset."""
    if name not in PRESETS:
        raise ChatbotError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return RunConfig.from_dict(PRESETS[name], source=f"preset {name!r}")


def read_json(path: str | Path) -> Any:
    """A run directory's JSON file; ChatbotError names the file and what to do."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ChatbotError(f"{path}: missing; the run directory is incomplete") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ChatbotError(f"{path}: not valid JSON ({exc}); retrain the model") from None
    except OSError as exc:
        raise ChatbotError(f"{path}: cannot read ({exc.strerror})") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Writes text to a temporary file beside `path`, then renames it into place.

    A crash at any moment leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
