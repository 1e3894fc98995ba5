"""Every setting in one place: dataclasses with defaults, saved as `config.json` in a run.

A run directory is rebuilt from its `config.json` alone (with `vocab.json` and the model file),
so every field that changes how text is tokenized, how the model is shaped or how replies are
decoded lives here: each section a dataclass whose fields carry their default, help, range or
choices, and whether `chatbot train` has a flag for them (chatbot.fields). The text and decode
sections live beside what reads them (chatbot.text.tokenizer, chatbot.decoding.settings).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chatbot.data.pairs import BAD_LINE_CHOICES
from chatbot.decoding.settings import DecodeConfig, check_decode
from chatbot.errors import ChatbotError
from chatbot.fields import TYPES, expected, setting, valid
from chatbot.models import ARCHS
from chatbot.rundir import TENSORBOARD, read_json, write_json
from chatbot.text.tokenizer import TextConfig
from chatbot.training.distribute import STRATEGIES

# Bump when the meaning of config.json changes; older files still load, newer ones are refused.
FORMAT_VERSION = 1


@dataclass
class DataConfig:
    max_len: int = setting(40, "tokens kept per side (prompt or reply); longer sides are cut",
                           low=1, flag=True)
    min_count: int = setting(1, "word tokenizer: rarer tokens become <UNK>", low=1, flag=True)
    max_vocab: int = setting(20000, "word tokenizer: most tokens in the vocabulary, specials "
                                    "included", low=1)
    val_fraction: float = setting(0.05, "share of pairs held out for validation (0: none)",
                                  low=0, high=1, high_open=True, flag=True)
    on_bad_lines: str = setting("error", "stop at the first bad line, or skip bad lines and "
                                         "count them", choices=BAD_LINE_CHOICES, flag=True)
    path: str = setting("", "the TSV this run was trained on, so that --resume finds it again")
    text: list[str] = setting([], "`chatbot pretrain`: the text files read")
    context_turns: int = setting(
        1, "turns read before each reply: the prompt and up to N - 1 earlier turns of its "
           "conversation (chat JSONL data; at most N * max_len tokens, chatbot.text.context)",
        low=1, flag=True)


@dataclass
class ModelConfig:
    arch: str = setting("lstm", "architecture (chatbot.models.ARCHS)", choices=tuple(ARCHS),
                        flag=True)
    embedding_dim: int = setting(128, "embedding size (transformer: model width)", low=1,
                                 flag=True)
    hidden_dim: int = setting(384, "recurrent units (transformer: feed-forward width)", low=1,
                              flag=True)
    num_layers: int = setting(1, "stacked recurrent layers (transformer: blocks)", low=1,
                              flag=True)
    dropout: float = setting(0.0, "dropout rate while training", low=0, high=1, high_open=True,
                             flag=True)
    num_heads: int = setting(4, "transformer: attention heads, each embedding_dim / num_heads "
                                "wide", low=1, flag=True)
    max_positions: int = setting(
        0, "transformer: longest sequence (0: what the longest training sequence needs, "
           "2 * max-len + 2 for single turns)", flag=True)
    vocab_size: int = setting(0, "filled in from the vocabulary when training starts")


OPTIMIZERS = ("adam", "rmsprop")  # compile_model maps each name to its Keras optimizer
# Answer rates measured after every epoch by decoding a sample of known prompts
# (chatbot.decoding.quality.AnswerRates, which `chatbot train` runs): quality is the lower of
# the other two.
MEASURED = ("answer_rate", "variant_rate", "quality")
# What the best checkpoint and early stopping watch: losses fall, accuracies and rates rise
# (chatbot.training.callbacks.Monitor); "val_" ones need validation pairs.
MONITORS = ("loss", "masked_accuracy", "val_loss", "val_masked_accuracy", *MEASURED)


def higher_is_better(monitor: str) -> bool:
    """The one rule for every monitored quantity: accuracies and rates improve by rising,
    losses by falling (the best checkpoint, early stopping and the best epoch of a plot all use
    it)."""
    return not monitor.endswith("loss")


# train.lr_decay applies over every DECAY_PAIRS pairs trained on (about an epoch of the default
# corpus with its noisy copies), so that a small corpus's many short epochs decay the rate no
# faster than a large one's; it stops at LR_FLOOR of train.learning_rate
# (chatbot.models.common.Decay).
DECAY_PAIRS = 4000
LR_FLOOR = 0.1
TENSORBOARD_OFF = "off"  # train.tensorboard's value for no TensorBoard logs


@dataclass
class TrainConfig:
    epochs: int = setting(30, "maximum epochs (early stopping may end sooner)", low=1,
                          flag=True)
    batch_size: int = setting(32, "pairs per batch", low=1, flag=True)
    optimizer: str = setting("adam", "optimizer", choices=OPTIMIZERS, flag=True)
    learning_rate: float = setting(2e-2, "optimizer step size", flag=True)
    lr_decay: float = setting(0.85, f"the learning rate is multiplied by this over every "
                                    f"{DECAY_PAIRS:,} pairs trained on, smoothly, down to "
                                    f"{LR_FLOOR:g} of it (1: constant)", low=0, high=1,
                              low_open=True, flag=True)
    clipnorm: float = setting(1.0, "gradient norm clipping, which keeps LSTM training stable")
    frequency_bias: bool = setting(
        True, "a fresh model's output layer starts with each token's log frequency among the "
              "training targets as its bias (chatbot.models.common.frequency_bias), not zeros")
    monitor: str = setting("quality", "quantity for the best checkpoint and early stopping "
                                      "(quality: the answer rates of known prompts and their "
                                      "typing variants, measured after every epoch)",
                           choices=MONITORS, flag=True)
    stop_at: float = setting(0.95, "stop once the monitored rate or accuracy reaches this (0: "
                                   "only when it stops improving)", low=0, high=1,
                             flag=True)
    patience: int = setting(5, "epochs without improvement before early stopping", flag=True)
    bucket_by_length: bool = setting(True, "batch pairs of similar length, so that little "
                                           "compute is padding")
    seed: int = setting(1234, "random seed: the split, the shuffling, the initial weights",
                        flag=True)
    probes: int = setting(3, "training prompts whose replies are printed after every epoch")
    strategy: str = setting(
        "default", "devices to train on: this one, every GPU here (or 2 logical CPUs), or "
                   "several workers described by TF_CONFIG", choices=STRATEGIES, flag=True)
    noise_copies: int = setting(1, "noisy copies of every training prompt in each epoch "
                                   "(typing noise: punctuation, case, typos, words; "
                                   "chatbot.data.noise)", low=0, flag=True)
    noise_pool: int = setting(8, "noisy copies made of every training prompt, of which each "
                                 "epoch sees the next --noise-copies in turn (at least "
                                 "--noise-copies)", low=0, flag=True)
    steps_per_epoch: int = setting(0, "prepared data (chatbot data prepare): batches in an "
                                      "epoch (0: one pass over the training shards)", low=0,
                                   flag=True)
    max_minutes: float = setting(0.0, "stop after the epoch that ends past this many minutes "
                                      "of training (0: no limit)", low=0, flag=True)
    run_eagerly: bool = setting(
        False, "run each training step op by op, as Keras's run_eagerly does, instead of "
               "tracing it into a graph first: slower per step, but print() and pdb work inside "
               "the model, and a run of a few dozen steps starts at once", flag=True)
    tensorboard: str = setting(
        TENSORBOARD, f"TensorBoard logs (chatbot.training.tensorboard): a folder inside the "
                     f"run directory, or an absolute path; {TENSORBOARD_OFF}: none", flag=True)
    tensorboard_steps: int = setting(20, "steps between the TensorBoard logs' figures of the "
                                         "last steps (0: per epoch only)", low=0, flag=True)


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
                if sf.name in values and f.name != "decode":  # decode: check_decode below
                    _check_value(f"{f.name}.{sf.name}", sf, values[sf.name], source)
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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_value(name: str, f: dataclasses.Field, value: Any, source: str) -> None:
    """Refuses a setting of the wrong type, out of its range or choices, naming it and the
    file."""
    if valid(f, value):
        return
    choices = f.metadata.get("choices")
    if choices and isinstance(value, str):
        raise ChatbotError(f"{source}: {name} is {value!r}; choose one of: {', '.join(choices)}")
    raise ChatbotError(f"{source}: {name} must be {expected(f)}, found {value!r}; fix the file "
                       "or retrain the model")


def train_flags() -> list[tuple[str, str, str, type, tuple | None, str]]:
    """`chatbot train`'s setting flags, made from the fields that have one: (flag, section,
    field, type, choices or None, help); the model's first, as --help lists them."""
    sections = {f.name: f.default_factory for f in dataclasses.fields(RunConfig)}
    flags = []
    for name in ("model", "train", "data", "text"):
        for f in dataclasses.fields(sections[name]):  # type: ignore[arg-type]
            if f.metadata.get("flag"):
                flags.append(("--" + f.name.replace("_", "-"), name, f.name,
                              TYPES[f.type], f.metadata["choices"] or None, f.metadata["help"]))
    return flags


# Named starting points for `chatbot train --preset NAME`; flags given on the command line win.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Sized so `make train` learns the default corpus by heart in a few minutes on 2 CPU cores,
    # and its prompts as people type them (noise_copies), not only as they are written; it
    # stops when the model alone answers stop_at of a sample of them (monitor: quality).
    "default": {},
    # The settings of the article this project started from.
    "article": {
        "data": {"max_len": 40},
        "model": {"embedding_dim": 64, "hidden_dim": 128},
        "train": {"batch_size": 32, "optimizer": "rmsprop", "learning_rate": 1e-3,
                  "lr_decay": 1.0, "monitor": "val_loss", "noise_copies": 0,
                  "frequency_bias": False},  # (Keras starts a Dense's bias at zeros)
    },
    # The decoder-only Transformer (chatbot/models/transformer.py), sized like the default
    # LSTM's parameter count and trained in the same few minutes.
    "transformer": {
        "model": {"arch": "transformer", "embedding_dim": 128, "hidden_dim": 512,
                  "num_layers": 2, "num_heads": 4},
        "train": {"learning_rate": 1e-3, "lr_decay": 1.0},
    },
    # A few seconds of training: for trying the pipeline end to end, not for good replies.
    "tiny": {
        "model": {"embedding_dim": 32, "hidden_dim": 64},
        "train": {"epochs": 5, "noise_copies": 0, "learning_rate": 5e-3, "lr_decay": 1.0},
    },
}


def preset(name: str) -> RunConfig:
    """Returns the RunConfig of a named preset."""
    if name not in PRESETS:
        raise ChatbotError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return RunConfig.from_dict(PRESETS[name], source=f"preset {name!r}")
