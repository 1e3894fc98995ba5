"""The one table of decoding settings (chatbot.decoding.settings): every DecodeConfig field
reachable from the CLI, `/set` and the HTTP API, and every value checked against its range."""

from __future__ import annotations

import dataclasses
import json

import pytest

from chatbot.cli import build_parser
from chatbot.decoding.samplers import SAMPLERS
from chatbot.decoding.settings import (
    BY_FIELD,
    SETTINGS,
    STRATEGIES,
    DecodeConfig,
    check_decode,
    parse_setting,
)
from chatbot.errors import ChatbotError
from chatbot.serving.completions import ApiError, parse_request
from chatbot.serving.limits import Limits

# Fields no front end sets on purpose: none today. (A field added here needs a reason.)
NOT_REACHABLE: dict[str, str] = {}
# A valid value other than the default, as `/set` and a flag spell it, for every setting.
OTHER = {"strategy": "top_k", "max_len": "12", "min_len": "2", "beam": "3",
         "length_penalty": "0.5", "nbest": "2", "temperature": "0.7", "top_k": "4",
         "top_p": "0.8", "no_repeat_ngram": "2", "loop_guard": "1", "allow_unk": "on",
         "seed": "7", "mmi": "0.5", "retrieval": "off", "retrieval_k": "5",
         "similarity": "0.6", "retrieval_weight": "2", "context": "off", "spelling": "off",
         "fallback": "off", "min_confidence": "0.3", "ambiguity": "0.1", "truecase": "off",
         "closest_first": "off"}


def test_the_openai_fields_of_the_table_are_openai_fields_the_api_reads():
    from chatbot.decoding.settings import OPENAI
    from chatbot.serving.completions import OPENAI_FIELDS

    assert set(OPENAI) == {"max_tokens", "max_completion_tokens", "temperature", "top_p", "seed"}
    assert set(OPENAI) <= set(OPENAI_FIELDS) and set(OPENAI.values()) <= set(SETTINGS)
    for field, name in OPENAI.items():  # each sets its setting, as /set would
        value = {"temperature": 0.5, "top_p": 0.5}.get(field, 7)
        body = {"messages": [{"role": "user", "content": "hi"}], field: value}
        decode = parse_request(json.dumps(body).encode(), DecodeConfig(), Limits()).decode
        assert getattr(decode, SETTINGS[name].field) == value, field


def test_every_field_has_one_setting_and_the_strategies_are_the_samplers():
    fields = {f.name for f in dataclasses.fields(DecodeConfig)}
    assert set(BY_FIELD) == fields - set(NOT_REACHABLE)
    assert set(OTHER) == set(SETTINGS)
    assert set(STRATEGIES) == set(SAMPLERS)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_every_setting_is_reachable_from_set_the_cli_and_the_api(name):
    setting = SETTINGS[name]
    via_set = parse_setting(name, OTHER[name], DecodeConfig())
    assert setting.field in via_set
    args = build_parser().parse_args(["reply", setting.flag, OTHER[name], "hi"])
    assert getattr(args, f"decode_{name}") == OTHER[name]
    value = json.loads(OTHER[name]) if OTHER[name][0].isdigit() else OTHER[name]
    value = {"on": True, "off": False}.get(value, value)
    body = {"messages": [{"role": "user", "content": "hi"}], name: value}
    if name == "min_len":
        body["max_len"] = 12
    decode = parse_request(json.dumps(body).encode(), DecodeConfig(), Limits()).decode
    assert getattr(decode, setting.field) == via_set[setting.field]


@pytest.mark.parametrize("name, text", [
    ("beam", "0"), ("beam", "257"), ("length_penalty", "1e308"), ("length_penalty", "-1"),
    ("temperature", "0"), ("temperature", "1e-300"), ("top_p", "0"), ("top_p", "1.5"),
    ("top_k", "1e30"), ("mmi", "-1"), ("mmi", "inf"), ("similarity", "nan"),
    ("retrieval_k", "0"), ("seed", "-1"), ("max_len", "0"), ("strategy", "psychic"),
    ("retrieval", "maybe"),
])
def test_out_of_range_values_are_refused_by_name(name, text):
    with pytest.raises(ChatbotError, match=f"^{name} "):
        parse_setting(name, text, DecodeConfig())


def test_check_decode_names_fields_as_config_json_spells_them():
    with pytest.raises(ChatbotError, match="retrieval_min_similarity must be"):
        check_decode(DecodeConfig(retrieval_min_similarity=2.0), by_field=True)
    with pytest.raises(ChatbotError, match=r"min_len \(12\) cannot exceed max_len \(10\)"):
        check_decode(DecodeConfig(min_len=12, max_reply_len=10))


def test_an_api_value_out_of_range_is_a_400_naming_the_field():
    body = {"messages": [{"role": "user", "content": "hi"}], "length_penalty": 1e308}
    with pytest.raises(ApiError) as info:
        parse_request(json.dumps(body).encode(), DecodeConfig(), Limits())
    assert (info.value.status, info.value.param) == (400, "length_penalty")
