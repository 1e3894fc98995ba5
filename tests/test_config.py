"""RunConfig: dict and file round trips, validation, choices and presets."""

from __future__ import annotations

import json

import pytest

from chatbot.config import (
    FORMAT_VERSION,
    MONITORS,
    OPTIMIZERS,
    PRESETS,
    DataConfig,
    DecodeConfig,
    ModelConfig,
    RunConfig,
    TextConfig,
    TrainConfig,
    preset,
)
from chatbot.data.pairs import BAD_LINE_CHOICES
from chatbot.errors import ChatbotError
from chatbot.models import ARCHS
from chatbot.text.tokenizer import SUBWORD_MODELS, TOKENIZERS
from chatbot.training.distribute import STRATEGIES


def custom_config() -> RunConfig:
    return RunConfig(
        text=TextConfig(lowercase=False, tokenizer="sentencepiece", subword_vocab=500,
                        subword_model="bpe"),
        data=DataConfig(max_len=12, min_count=2, max_vocab=500, val_fraction=0.1,
                        on_bad_lines="skip"),
        model=ModelConfig(embedding_dim=16, hidden_dim=24, num_layers=2, dropout=0.25,
                          vocab_size=321),
        train=TrainConfig(epochs=3, batch_size=8, optimizer="rmsprop", learning_rate=0.01,
                          clipnorm=0.5, monitor="val_loss", patience=1, bucket_by_length=False,
                          seed=99, probes=0),
        decode=DecodeConfig(max_reply_len=17),
    )


# --- choices: one list each, where implemented; config validation and the CLI read it -----


@pytest.mark.parametrize("name, choices", [
    ("data.on_bad_lines", BAD_LINE_CHOICES), ("train.optimizer", OPTIMIZERS),
    ("train.monitor", MONITORS), ("train.strategy", STRATEGIES),
    ("text.tokenizer", TOKENIZERS), ("text.subword_model", SUBWORD_MODELS),
])
def test_a_setting_outside_its_choices_is_refused_with_the_choices(name, choices):
    section, field = name.split(".")
    for good in choices:
        assert getattr(getattr(RunConfig.from_dict({section: {field: good}}), section),
                       field) == good
    with pytest.raises(ChatbotError) as info:
        RunConfig.from_dict({section: {field: "nope"}}, source="run/config.json")
    assert str(info.value) == (f"run/config.json: {name} is 'nope'; choose one of: "
                               f"{', '.join(choices)}")


def test_the_cli_offers_the_same_choices():
    from chatbot.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    offered = {action.dest: tuple(action.choices) for action in train._actions
               if action.choices is not None}
    assert offered == {"preset": tuple(PRESETS), "arch": tuple(ARCHS),
                       "optimizer": OPTIMIZERS, "monitor": MONITORS, "strategy": STRATEGIES,
                       "on_bad_lines": BAD_LINE_CHOICES, "tokenizer": TOKENIZERS,
                       "subword_model": SUBWORD_MODELS}


# --- dict and file round trips --------------------------------------------------------------


def test_defaults():
    config = RunConfig()
    assert config.format_version == FORMAT_VERSION == 1
    assert config.text.lowercase is True
    assert (config.text.tokenizer, config.text.subword_model) == ("word", "unigram")
    assert (config.data.max_len, config.data.val_fraction, config.data.on_bad_lines) == (
        40, 0.05, "error",
    )
    assert (config.model.embedding_dim, config.model.hidden_dim) == (128, 384)
    assert (config.train.optimizer, config.train.batch_size) == ("adam", 32)


def test_to_dict_is_nested_plain_data():
    d = custom_config().to_dict()
    assert set(d) == {"text", "data", "model", "train", "decode", "format_version"}
    assert d["text"] == {"lowercase": False, "tokenizer": "sentencepiece", "subword_vocab": 500,
                         "subword_model": "bpe"}
    assert d["decode"]["max_reply_len"] == 17
    assert d["model"]["num_layers"] == 2
    assert d["format_version"] == FORMAT_VERSION
    # JSON-serializable as is.
    assert json.loads(json.dumps(d)) == d


@pytest.mark.parametrize("make", [RunConfig, custom_config], ids=["default", "custom"])
def test_dict_round_trip(make):
    config = make()
    again = RunConfig.from_dict(config.to_dict())
    assert again == config
    assert again.to_dict() == config.to_dict()


def test_from_empty_dict_gives_defaults():
    assert RunConfig.from_dict({}) == RunConfig()


def test_from_partial_dict_keeps_other_defaults():
    config = RunConfig.from_dict({"train": {"epochs": 7}, "model": {"hidden_dim": 10}})
    assert config.train.epochs == 7
    assert config.model.hidden_dim == 10
    assert config.train.batch_size == 32
    assert config.model.embedding_dim == 128
    assert config.data == DataConfig()


def test_format_version_must_be_a_positive_whole_number():
    for bad in (0, -1, "1", 1.0, True):
        with pytest.raises(ChatbotError, match="format_version must be a whole number"):
            RunConfig.from_dict({"format_version": bad})


@pytest.mark.parametrize("name, value", [
    ("model.hidden_dim", 0), ("model.num_layers", -1), ("model.embedding_dim", "64"),
    ("data.max_len", "forty"), ("data.val_fraction", 1.5), ("train.epochs", 2.5),
    ("text.lowercase", "yes"), ("decode.seed", "x"), ("text.subword_vocab", 0),
])
def test_settings_of_the_wrong_type_or_range_are_refused_by_name(name, value):
    section, field = name.split(".")
    with pytest.raises(ChatbotError, match=rf"{name} must be"):
        RunConfig.from_dict({section: {field: value}})
    assert RunConfig.from_dict({"decode": {"seed": None}}).decode.seed is None


def test_save_load_round_trip(tmp_path):
    path = tmp_path / "run" / "config.json"
    config = custom_config()
    config.save(path)
    assert RunConfig.load(path) == config
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert json.loads(text) == config.to_dict()


def test_save_accepts_string_path(tmp_path):
    path = str(tmp_path / "config.json")
    RunConfig().save(path)
    assert RunConfig.load(path) == RunConfig()


# --- validation -----------------------------------------------------------------------------


def test_unknown_key_is_named():
    with pytest.raises(ChatbotError) as info:
        RunConfig.from_dict({"train": {"epochs": 3, "epochz": 4}})
    message = str(info.value)
    assert "train.epochz" in message
    assert message.startswith("config: unknown setting(s) train.epochz; known: ")
    assert "epochs" in message


def test_several_unknown_keys_are_all_named_sorted():
    with pytest.raises(ChatbotError) as info:
        RunConfig.from_dict({"model": {"zeta": 1, "alpha": 2}})
    assert str(info.value).startswith("config: unknown setting(s) model.alpha, model.zeta;")


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"decode": {"no_such_setting": 0.7}}), encoding="utf-8")
    with pytest.raises(ChatbotError) as info:
        RunConfig.load(path)
    assert str(info.value).startswith(f"{path}: unknown setting(s) decode.no_such_setting;")


def test_unknown_top_level_section_is_named():
    with pytest.raises(ChatbotError, match="trian"):
        RunConfig.from_dict({"trian": {"epochs": 5}})


def test_section_that_is_not_an_object_raises():
    with pytest.raises(ChatbotError) as info:
        RunConfig.from_dict({"model": [1, 2]})
    assert str(info.value) == "config: 'model' must be an object"


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 99])
def test_newer_format_version_asks_for_an_upgrade(version):
    with pytest.raises(ChatbotError) as info:
        RunConfig.from_dict({"format_version": version})
    message = str(info.value)
    assert f"format_version {version}" in message
    assert "newer" in message
    assert "upgrade" in message


def test_newer_format_version_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"format_version": FORMAT_VERSION + 1}), encoding="utf-8")
    with pytest.raises(ChatbotError) as info:
        RunConfig.load(path)
    assert str(info.value).startswith(f"{path}: format_version {FORMAT_VERSION + 1}")
    assert "upgrade" in str(info.value)


@pytest.mark.parametrize("version", ["1", 1.0, None])
def test_non_integer_format_version_is_refused(version):
    with pytest.raises(ChatbotError, match="format_version"):
        RunConfig.from_dict({"format_version": version})


@pytest.mark.parametrize(
    "raw, kind", [([], "list"), ("text", "str"), (3, "int"), (None, "NoneType")]
)
def test_non_object_raises(raw, kind):
    with pytest.raises(ChatbotError) as info:
        RunConfig.from_dict(raw)
    assert str(info.value).startswith(f"config: expected a JSON object, found {kind}; ")
    assert "retrain" in str(info.value)


@pytest.mark.parametrize(
    "content, kind", [("[1, 2]", "list"), ('"config"', "str"), ("null", "NoneType")]
)
def test_non_object_json_file_raises_naming_the_file(tmp_path, content, kind):
    path = tmp_path / "config.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ChatbotError) as info:
        RunConfig.load(path)
    assert str(info.value).startswith(f"{path}: expected a JSON object, found {kind}; ")


def test_load_missing_file_names_the_path(tmp_path):
    path = tmp_path / "config.json"
    with pytest.raises(ChatbotError) as info:
        RunConfig.load(path)
    assert str(info.value) == f"{path}: missing; the run directory is incomplete"


@pytest.mark.parametrize("content", [b"", b"{", b"{'a': 1}", b"\xff\xfe"])
def test_load_invalid_json_names_the_path(tmp_path, content):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(ChatbotError) as info:
        RunConfig.load(path)
    assert str(info.value).startswith(f"{path}: not valid JSON")


def test_load_of_a_directory_raises_chatbot_error(tmp_path):
    path = tmp_path / "config.json"
    path.mkdir()
    with pytest.raises(ChatbotError) as info:
        RunConfig.load(path)
    assert str(path) in str(info.value)


# --- presets --------------------------------------------------------------------------------


def test_article_preset():
    config = preset("article")
    assert config.model.embedding_dim == 64
    assert config.model.hidden_dim == 128
    assert config.data.max_len == 40
    assert config.train.batch_size == 32
    assert config.train.optimizer == "rmsprop"
    assert config.train.learning_rate == 1e-3
    assert config.train.monitor == "val_loss"
    assert config.train.frequency_bias is False  # Keras's zeros, as the article's model had


def test_default_preset_is_the_defaults():
    assert preset("default") == RunConfig()


def test_tiny_preset():
    config = preset("tiny")
    assert (config.model.embedding_dim, config.model.hidden_dim, config.train.epochs) == (
        32, 64, 5,
    )


def test_every_preset_loads():
    assert {"default", "article", "tiny"} <= set(PRESETS)
    for name in PRESETS:
        assert isinstance(preset(name), RunConfig)


def test_preset_returns_a_fresh_copy():
    first = preset("tiny")
    first.train.epochs = 999
    first.model.hidden_dim = 1
    again = preset("tiny")
    assert again.train.epochs == 5
    assert again.model.hidden_dim == 64
    assert PRESETS["tiny"]["train"] == {"epochs": 5, "noise_copies": 0, "learning_rate": 5e-3,
                                        "lr_decay": 1.0}


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ChatbotError) as info:
        preset("huge")
    message = str(info.value)
    assert message == f"unknown preset 'huge'; choose one of: {', '.join(PRESETS)}"
    assert "default, article, transformer, tiny" in message


# --- one declaration per training setting: the CLI's flags are made from the fields ----------

# Fields of config.json that `chatbot train` deliberately has no flag for.
NO_FLAG = {"text.lowercase", "data.max_vocab", "data.path", "data.text", "model.vocab_size",
           "train.clipnorm", "train.frequency_bias", "train.bucket_by_length", "train.probes"}


def test_every_training_setting_has_a_flag_unless_listed_and_the_flag_sets_it():
    import dataclasses

    from chatbot.cli import build_parser
    from chatbot.cli.training import train_config
    from chatbot.config import train_flags

    flagged = {f"{section}.{name}" for _, section, name, *_ in train_flags()}
    fields = {f"{s.name}.{f.name}" for s in dataclasses.fields(RunConfig)
              if s.name not in ("decode", "format_version")
              for f in dataclasses.fields(s.default_factory)}
    assert flagged | NO_FLAG == fields and not flagged & NO_FLAG
    given = {"arch": "gru", "epochs": "7", "dropout": "0.25", "tokenizer": "sentencepiece",
             "max_minutes": "1.5", "context_turns": "3", "on_bad_lines": "skip"}
    argv = ["train", "--data", "x.tsv"]
    for name, value in given.items():
        argv += ["--" + name.replace("_", "-"), value]
    config = train_config(build_parser().parse_args(argv))
    assert (config.model.arch, config.train.epochs, config.model.dropout) == ("gru", 7, 0.25)
    assert (config.text.tokenizer, config.train.max_minutes) == ("sentencepiece", 1.5)
    assert (config.data.context_turns, config.data.on_bad_lines) == (3, "skip")


@pytest.mark.parametrize("argv, expected", [
    ([], False), (["--run-eagerly"], True), (["--no-run-eagerly"], False)])
def test_a_true_or_false_setting_is_a_flag_alone(argv, expected):
    from chatbot.cli import build_parser
    from chatbot.cli.training import train_config

    args = build_parser().parse_args(["train", "--data", "x.tsv", *argv])
    assert args.run_eagerly == (expected if argv else None)  # not given: the preset's
    assert train_config(args).train.run_eagerly is expected
    with pytest.raises(SystemExit):  # it takes no value
        build_parser().parse_args(["train", "--data", "x.tsv", "--run-eagerly", "yes"])
