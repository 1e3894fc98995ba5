"""OpenAI chat-completion requests read into decoding settings, and replies cut into deltas:
no model needed (the server itself is tested in test_app.py)."""

from __future__ import annotations

import json

import pytest

from chatbot.config import DecodeConfig
from chatbot.errors import ChatbotError
from chatbot.serving.completions import ApiError, parse_request
from chatbot.serving.limits import Limits
from chatbot.serving.responses import ChoiceText, Said, choice_text, response
from chatbot.text.words import Tokenizer

SAVED = DecodeConfig()  # greedy, max_reply_len 40, retrieval on
LIMITS = Limits(max_reply_tokens=100, max_choices=4)
HELLO = [{"role": "user", "content": "hello"}]


def parse(saved: DecodeConfig = SAVED, **fields):
    return parse_request(json.dumps({"messages": HELLO, **fields}).encode(), saved, LIMITS)


def test_absent_fields_keep_the_saved_settings():
    completion = parse()
    assert completion.decode == SAVED
    assert completion.decode is not SAVED  # the request's own copy
    assert (completion.n, completion.stream, completion.stop) == (1, False, ())
    assert completion.messages[0].content == "hello"


@pytest.mark.parametrize("fields, strategy, changed", [
    ({"temperature": 0}, "greedy", {}),
    ({"temperature": 0, "top_p": 0.5}, "greedy", {}),  # deterministic wins
    ({"temperature": 0.7}, "random", {"temperature": 0.7}),
    ({"top_p": 0.5}, "top_p", {"top_p": 0.5}),
    ({"top_p": 1}, "greedy", {}),  # no truncation asked: as absent
    ({"temperature": 1.2, "top_p": 0.8}, "top_p", {"temperature": 1.2, "top_p": 0.8}),
    ({"max_tokens": 5}, "greedy", {"max_reply_len": 5}),
    ({"max_completion_tokens": 6}, "greedy", {"max_reply_len": 6}),
    ({"seed": 3, "temperature": 1}, "random", {"seed": 3, "temperature": 1.0}),
    ({"beam": 3}, "beam", {"beam_width": 3}),
    ({"temperature": 0.9, "beam": 3}, "beam", {"beam_width": 3, "temperature": 0.9}),
    ({"top_k": 4}, "top_k", {"top_k": 4}),
    ({"no_repeat_ngram": 2, "retrieval": False, "mmi": 0.5}, "greedy",
     {"no_repeat_ngram": 2, "retrieval": False, "mmi": 0.5}),
    ({"fallback": False, "min_confidence": 0.7, "ambiguity": 0.1}, "greedy",
     {"fallback": False, "min_confidence": 0.7, "ambiguity": 0.1}),
])
def test_sampling_fields_and_our_settings_map_onto_decode_settings(fields, strategy, changed):
    decode = parse(**fields).decode
    assert decode.strategy == strategy
    for name, value in changed.items():
        assert getattr(decode, name) == value, name


def test_temperature_zero_on_a_run_saved_with_sampling_decodes_greedily():
    saved = DecodeConfig(strategy="top_p")
    assert parse(saved, temperature=0).decode.strategy == "greedy"
    assert parse(saved).decode.strategy == "top_p"
    assert parse(saved, temperature=0.5).decode.strategy == "top_p"  # keeps its sampler


def test_n_best_with_beam_search_widens_the_beam():
    decode = parse(beam=2, n=4).decode
    assert (decode.strategy, decode.beam_width, decode.nbest) == ("beam", 4, 4)


def test_rows_say_how_many_rows_the_choices_come_from():
    assert parse(n=3).rows() == 1  # greedy: one row, copied
    assert parse(n=3, temperature=1).rows() == 3  # one row per choice
    assert parse(n=3, temperature=1, seed=5).rows() == 3  # (row i drawn with seed 5 + i)



@pytest.mark.parametrize("fields, rows", [
    ({}, 1 + (1 + 3)),  # greedy, its reply and the memory's 3 known replies reranked
    ({"retrieval": False}, 1),
    ({"temperature": 1, "n": 4}, 4),  # sampled: no known replies join
    ({"temperature": 1, "n": 4, "mmi": 1}, 4 + 2 * 4),  # each choice scored twice
    ({"beam": 8, "n": 2, "retrieval": False}, 8),
    ({"beam": 8, "nbest": 3, "mmi": 1}, 8 + 2 * (3 + 3)),
    ({"n": 3, "logprobs": True, "retrieval": False}, 1 + 3),  # a logprobs row per choice
])
def test_work_counts_every_row_decoded_at_every_step(fields, rows):
    assert parse(max_tokens=10, **fields).work() == 10 * rows


def test_a_request_past_max_work_is_refused_by_name():
    limits = Limits(max_work=100)
    body = {"messages": HELLO, "max_tokens": 20, "beam": 4, "retrieval": False}
    assert parse_request(json.dumps(body).encode(), SAVED, limits).work() == 80
    with pytest.raises(ApiError, match="--max-work 100") as caught:
        parse_request(json.dumps({**body, "max_tokens": 30}).encode(), SAVED, limits)
    assert caught.value.status == 400 and caught.value.param == "max_tokens"

def test_the_saved_min_len_gives_way_to_a_shorter_max_tokens():
    assert parse(DecodeConfig(min_len=8), max_tokens=3).decode.min_len == 3
    with pytest.raises(ApiError, match="min_len"):
        parse(max_tokens=3, min_len=8)


def test_openai_content_parts_and_the_developer_role_are_read():
    completion = parse(messages=[
        {"role": "developer", "content": "be nice"},
        {"role": "user", "content": [{"type": "text", "text": "how are"},
                                     {"type": "text", "text": "you?"}]}])
    assert [(m.role, m.content) for m in completion.messages] == [
        ("system", "be nice"), ("user", "how are you?")]


def test_stream_options_and_stop():
    completion = parse(stream=True, stream_options={"include_usage": True}, stop="!")
    assert (completion.stream, completion.include_usage, completion.stop) == (True, True, ("!",))
    assert parse(stop=["a", "b"]).stop == ("a", "b")


@pytest.mark.parametrize("body, param", [
    (b"{not json", None),
    (b"\xff\xfe\x00", None),
    (b"[" * 100_000, None),
    (b"[1, 2]", None),
    (b"{}", "messages"),
    (b'{"messages": []}', "messages"),
    (b'{"messages": "hello"}', "messages"),
    (b'{"messages": [{"role": "tool", "content": "x"}]}', "messages"),
    (b'{"messages": [{"role": "user", "content": ""}]}', "messages"),
    (b'{"messages": [{"role": "user", "content": 5}]}', "messages"),
    (b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}',
     "messages"),
    (b'{"messages": [{"role": "system", "content": "hi"}]}', "messages"),
])
def test_bad_bodies_are_400_with_the_field_named(body, param):
    with pytest.raises(ApiError) as info:
        parse_request(body, SAVED, LIMITS)
    assert info.value.status == 400
    assert info.value.param == param
    error = info.value.body()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]


@pytest.mark.parametrize("fields, param", [
    ({"temperature": 2.5}, "temperature"),
    ({"temperature": -1}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 101}, "max_tokens"),
    ({"max_tokens": 2.5}, "max_tokens"),
    ({"n": 0}, "n"),
    ({"n": 5}, "n"),
    ({"n": True}, "n"),
    ({"seed": -1}, "seed"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"stop": [""]}, "stop"),
    ({"stop": 5}, "stop"),
    ({"stream": "yes"}, "stream"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"model": 5}, "model"),
    ({"beam": "wide"}, "beam"),
    ({"beam": 2.5}, "beam"),
    ({"beam": [2]}, "beam"),
    ({"max_len": 500}, "max_len"),
    ({"strategy": "psychic"}, "strategy"),
    ({"retrieval": "maybe"}, "retrieval"),
    ({"logprobs": "yes"}, "logprobs"),
    ({"top_logprobs": 3}, "top_logprobs"),  # without logprobs: true
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"length_penalty": 1e308}, "length_penalty"),
    ({"length_penalty": -1000}, "length_penalty"),
    ({"length_penalty": 1000}, "length_penalty"),
    ({"beam": 20000}, "beam"),
    ({"beam": 17}, "beam"),  # past this server's --max-beam (16)
    ({"nbest": 17, "beam": 16}, "nbest"),
    ({"temperature": 1e-300}, "temperature"),
    ({"mmi": 1e308}, "mmi"),
    ({"top_k": 10**30}, "top_k"),
    ({"retrieval_k": 10**9}, "retrieval_k"),
    ({"no_repeat_ngram": 10**9}, "no_repeat_ngram"),
    ({"seed": 2**64}, "seed"),
    ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format"),
    ({"tool_choice": "required", "tools": []}, "tool_choice"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"audio": {"voice": "x"}}, "audio"),
    ({"bean": 3}, "bean"),
])
def test_out_of_range_or_unknown_fields_are_400(fields, param):
    with pytest.raises(ApiError) as info:
        parse(**fields)
    assert (info.value.status, info.value.param) == (400, param)


def test_settings_the_sampler_refuses_are_400():
    with pytest.raises(ApiError, match="mmi"):
        parse(mmi=-1)


def test_ignored_openai_fields_change_nothing():
    assert parse(user="u1", presence_penalty=0.5, metadata={"a": "b"}).decode == SAVED


def test_limits_are_checked():
    with pytest.raises(ChatbotError, match="max_concurrent must be a whole number"):
        Limits(max_concurrent=0)
    with pytest.raises(ChatbotError, match="timeout"):
        Limits(timeout=float("nan"))


WORDS = Tokenizer()


def stream(tokens, stop=()) -> tuple[list[str], ChoiceText]:
    text = ChoiceText(WORDS.detokenize, stop)
    deltas = [text.push(t) for t in tokens]
    return [d for d in [*deltas, text.finish()] if d], text


def test_deltas_join_to_the_detokenized_reply():
    tokens = WORDS.tokenize("yes, 我喜欢茶. \"quoted\" (really)!")
    deltas, text = stream(tokens)
    assert "".join(deltas) == text.text == WORDS.detokenize(tokens)
    assert len(deltas) == len(tokens)  # one delta per token
    assert text.finish_reason(max_len=40) == "stop"
    assert text.finish_reason(max_len=len(tokens)) == "length"


def test_a_stop_sequence_cuts_the_reply_and_what_is_held_back_is_sent_at_the_end():
    tokens = WORDS.tokenize("hi there! how are you?")
    deltas, text = stream(tokens, stop=("how",))
    assert "".join(deltas) == text.text == "hi there! "
    assert text.stopped and text.finish_reason(max_len=3) == "stop"
    assert len(text.tokens) == 4  # generated up to the stop sequence
    deltas, text = stream(tokens, stop=("never here",))
    assert "".join(deltas) == WORDS.detokenize(tokens)
    assert choice_text(tokens, WORDS.detokenize, ("are",)).text == "hi there! how "


def test_a_reply_said_as_written_is_its_text_not_its_tokens_detokenized():
    written = "Hi there!\nHow are you?"
    said = Said(tuple(WORDS.tokenize(written)), written, 0.91234, "memory", "hello")
    assert WORDS.detokenize(said.tokens) != written  # case and line break lost
    text = choice_text(said, WORDS.detokenize)
    assert text.text == written and text.tokens == list(said.tokens)
    assert text.finish_reason(max_len=40) == "stop"
    cut = choice_text(said, WORDS.detokenize, ("\n",))
    assert cut.text == "Hi there!" and cut.stopped
    assert choice_text(said, WORDS.detokenize, ("never",)).text == written


def test_each_choice_tells_its_confidence_source_and_matched_prompt():
    known = Said(("hi", "there", "!"), "hi there!", 0.91234, "memory", "hello")
    fallback = Said(("i", "don't", "know", "."), "I don't know.", 0.1, "fallback")
    choices = [choice_text(s, WORDS.detokenize) for s in (known, fallback)]
    body = response("chatcmpl-1", "m", choices, max_len=40, prompt_tokens=1)
    assert [c["message"]["content"] for c in body["choices"]] == ["hi there!", "I don't know."]
    assert [(c["confidence"], c["source"], c["matched_prompt"]) for c in body["choices"]] == [
        (0.9123, "memory", "hello"), (0.1, "fallback", None)]
    assert body["usage"]["completion_tokens"] == 7
    plain = response("chatcmpl-2", "m", [choice_text(["hi"], WORDS.detokenize)], 40, 1)
    assert "confidence" not in plain["choices"][0]  # tokens alone tell nothing more
