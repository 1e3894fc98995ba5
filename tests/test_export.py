"""`chatbot export`: the SavedModel replies exactly as the NumPy engines and `Bot.reply` do.

"Exactly" under plain settings: greedy decoding with no retrieval, no MMI, no repetition guards
(no_repeat_ngram, loop_guard) and no spelling correction, which are Python steps of chat and
reply that the graph does not have (`chatbot.export.saved_model.PLAIN`); min_len, allow_unk and
max_reply_len are the run's own on both sides. The NumPy reference is then `GreedySampler`
with those three settings, which is what `Bot.reply` runs under PLAIN.

The fast tests compare the graph's parts with their Python originals on models with random
weights (no training): the tokenizer and detokenizer, and greedy decoding for every
architecture. The slow ones export the tiny trained runs and load the SavedModel.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import unicodedata

import keras
import numpy as np
import pytest
import tensorflow as tf

from chatbot.cli import main
from chatbot.config import DecodeConfig, ModelConfig
from chatbot.decoding.bot import Bot
from chatbot.decoding.samplers import GreedySampler
from chatbot.export.graph import graph_engine, greedy
from chatbot.export.saved_model import CLIENT_FILE, PLAIN, VERSION, export
from chatbot.export.text_ops import detokenize, feature_table, tokenize
from chatbot.models import ARCHS, arch_module
from chatbot.models.kernels import pad_batch
from chatbot.models.weights import model_weights
from chatbot.rundir import STATUS, TOKENIZER, write_json
from chatbot.text.vocab import SPECIALS, Vocabulary
from chatbot.text.words import Tokenizer
from tests.conftest import shared, tiny_config

# English, Chinese, an unknown word (zzyzx), and one longer than max_len (40 tokens).
PROMPTS = ["hello", "How are you?", "你好", "再见", "hello zzyzx", "你好，再见！",
           "do you like tea? 我喜欢", " ".join(["what is your name?"] * 12)]


def reference(engine, prompts: list[list[int]], vocab: Vocabulary, decode: DecodeConfig):
    """The NumPy greedy reply ids that Bot.reply gives under PLAIN."""
    sampler = GreedySampler(max_len=decode.max_reply_len, min_len=decode.min_len,
                            allow_unk=decode.allow_unk)
    return [found[0].tokens for found in sampler(engine, prompts, vocab)]


def rows(ids: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
    """Replies as lists, checking that each row is its reply and then only padding."""
    assert all(not row[n:].any() and row[:n].all() for row, n in zip(ids, lengths))
    return [row[:n].tolist() for row, n in zip(ids, lengths)]


# --- the tokenizer and the detokenizer in TF ops ----------------------------------------------

TRICKY = ["Hello, World! How are you?", "你好！很高兴认识你。",
          "don't stop: well-known 3.5 1,000 10:30",
          "wait... what?!! ```code``` --- ==", "café naïve Привет İstanbul ΟΔΟΣ ΣΑΣ", "ग्रह नमस्ते",
          "👍🏽 👨‍👩‍👧 ❤️ hi\u200d", "snake_case __init__", "a\x00B c\tD\ne\u3000f\xa0g",
          "한국어 ひらがな カタカナ 漢字", "x²³ ½ Ⅻ ١٢٣.٤", "", "   "]
ALPHABET = [*"aZ09 .,!?'’-_\"`*=~#\t\n", "你", "好", "。", "，", "é", "\u0301", "\u200d", "👍",
            "\U0001f3fd", "\ufe0f", "\u3000", "\xa0", "ا", "١", "Σ", "\x00"]


@pytest.mark.parametrize("lowercase", [True, False])
def test_tokenize_finds_the_tokens_of_the_word_tokenizer(lowercase):
    # Random strings of the characters the rules treat differently, in NFC (the form the
    # graph expects: it has no normalization op, chatbot.export.text_ops).
    rng = random.Random(0)
    texts = TRICKY + [unicodedata.normalize("NFC", "".join(
        rng.choice(ALPHABET) for _ in range(rng.randint(0, 20)))) for _ in range(1000)]
    found = tokenize(tf.constant(texts), lowercase).to_list()
    tokenizer = Tokenizer(lowercase=lowercase)
    for text, tokens in zip(texts, found):
        assert [t.decode() for t in tokens] == tokenizer.tokenize(text), repr(text)


def test_detokenize_spaces_tokens_as_the_word_tokenizer_does():
    words = ['"', ".", ",", "!", "?", ";", ":", "...", "!!", "(", ")", "$", "%", "“", "”", "'",
             "「", "」", "—", "你", "好", "。", "，", "hi", "don't", "3.5", "a"]
    vocab = Vocabulary([*SPECIALS, *words])
    rng = random.Random(0)
    tables = tf.constant(vocab.tokens), tf.constant(feature_table(vocab))
    tokenizer = Tokenizer()
    for width in range(8):  # replies as wide as the batch (0, 1, 2 ...), and narrower ones
        replies = [[rng.randrange(len(SPECIALS), len(vocab)) for _ in range(rng.randint(0, width))]
                   for _ in range(100)] + [[5] * width]
        texts = detokenize(tf.constant(pad_batch(replies).astype(np.int32)), *tables).numpy()
        for reply, text in zip(replies, texts):
            assert text.decode() == tokenizer.detokenize(vocab.decode(reply)), vocab.decode(reply)


# --- greedy decoding in TF, on random weights --------------------------------------------------

VOCAB = Vocabulary([*SPECIALS, *(f"w{i}" for i in range(25))])
RANDOM_PROMPTS = [[7, 8, 9, 10, 11, 12, 13], [], [16], [3, 20, 21], [22, 23, 24, 25, 26, 27, 28]]


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("decode", [DecodeConfig(max_reply_len=20),
                                    DecodeConfig(max_reply_len=12, min_len=12, allow_unk=True)],
                         ids=["plain", "min_len"])
def test_graph_greedy_gives_the_numpy_engines_replies(arch, decode):
    # Random weights write long replies; the transformer's 16 positions run out, so its rows
    # end by the rule that only <EOS> fits (and with min_len, by everything being banned).
    keras.utils.set_random_seed(1)
    config = ModelConfig(arch=arch, embedding_dim=8, hidden_dim=16, num_layers=2,
                         num_heads=2, max_positions=16, vocab_size=len(VOCAB))
    weights = model_weights(arch_module(arch).build(config))
    engine = arch_module(arch).Engine(weights, config, VOCAB)
    graph = graph_engine(weights, config, VOCAB)
    decoded = tf.function(lambda ids: greedy(graph, ids, VOCAB, decode), autograph=False)
    ids, lengths = (t.numpy() for t in decoded(tf.constant(pad_batch(RANDOM_PROMPTS),
                                                           tf.int32)))
    assert ids.shape == (len(RANDOM_PROMPTS), decode.max_reply_len)
    expected = reference(engine, RANDOM_PROMPTS, VOCAB, decode)
    expected[1] = []  # an empty prompt gets no reply, as Bot.reply_batch gives it none
    assert rows(ids, lengths) == expected
    assert max(map(len, expected)) > 5  # long replies: many steps compared


# --- the SavedModel of every tiny run ----------------------------------------------------------


@pytest.fixture(scope="module")
def exports(tiny_runs, tmp_path_factory):
    """{arch: (run directory, SavedModel directory, the loaded SavedModel)}, each exported
    once."""
    def exporter(run):
        def build(out):
            assert export(run, out).path == out / VERSION
        return build

    paths = shared(tmp_path_factory, "exports",
                   {arch: exporter(run) for arch, run in tiny_runs.items()})
    return {arch: (run, paths[arch] / VERSION, tf.saved_model.load(str(paths[arch] / VERSION)))
            for arch, run in tiny_runs.items()}


def plain_bot(run) -> Bot:
    bot = Bot.load(run)
    bot.configure(**PLAIN)
    return bot


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_reply_ids_are_the_numpy_engines_greedy_replies(exports, arch):
    run, _, saved = exports[arch]
    bot = plain_bot(run)
    # The ids a client sends: every token of the prompt, so the graph cuts the long one.
    sent = [bot.vocab.encode(bot.tokenizer.tokenize(p)) for p in PROMPTS]
    assert max(map(len, sent)) > bot.config.data.max_len and bot.vocab.unk_id in sent[4]
    out = saved.signatures["serving_default"](
        prompt_ids=tf.constant(pad_batch([*sent, []]), tf.int32))
    ids, lengths = out["reply_ids"].numpy(), out["reply_length"].numpy()
    assert ids.shape == (len(sent) + 1, bot.config.decode.max_reply_len)
    read = [bot.vocab.encode(bot.prompt_tokens(p)) for p in PROMPTS]  # cut to max_len
    assert rows(ids, lengths) == [*reference(bot.engine, read, bot.vocab, bot.decode), []]
    assert bot.vocab.decode(ids[0]) == ["hi", "there", "!"]  # what it learned


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_reply_text_is_bot_reply(exports, arch):
    run, _, saved = exports[arch]
    bot = plain_bot(run)
    prompts = [*PROMPTS, "", "  \t", "HELLO"]
    reply_text = saved.signatures["reply_text"]
    out = [t.decode() for t in reply_text(prompts=tf.constant(prompts))["reply"].numpy()]
    assert out == [bot.reply(p).text for p in prompts]
    assert out[2] == "你好！很高兴认识你。"
    # Alone, each prompt gets the reply it got in the batch (padding changes nothing).
    assert [reply_text(prompts=tf.constant([p]))["reply"].numpy()[0].decode()
            for p in prompts] == out


@pytest.mark.slow
def test_the_export_holds_what_a_client_needs(exports):
    run, path, _ = exports["lstm"]
    client = json.loads((path / "assets.extra" / CLIENT_FILE).read_text(encoding="utf-8"))
    assert client["tokens"] == Bot.load(run).vocab.tokens
    assert client["ids"] == {"pad": 0, "sos": 1, "eos": 2, "unk": 3, "sep": 4, "turn": None}
    assert (client["max_len"], client["max_reply_len"]) == (40, 40)
    assert client["signatures"] == ["serving_default", "reply_text"]


@pytest.mark.slow
def test_a_sentencepiece_run_is_exported_without_the_text_signature(tiny_tsv, tmp_path):
    from chatbot.training.train import train

    config = tiny_config(epochs=1, run_eagerly=True)
    config.text.tokenizer = "sentencepiece"
    config.text.subword_vocab = 300
    train(tiny_tsv, tmp_path / "run", config, log=lambda _: None, verbose=0)
    exported = export(tmp_path / "run", tmp_path / "export")
    assert exported.signatures == ["serving_default"]
    assert any("sentencepiece" in note for note in exported.notes)
    assert (exported.path / "assets.extra" / TOKENIZER).is_file()
    saved = tf.saved_model.load(str(exported.path))
    assert list(saved.signatures) == ["serving_default"]
    bot = plain_bot(tmp_path / "run")
    read = [bot.vocab.encode(bot.prompt_tokens(p)) for p in PROMPTS]
    out = saved.signatures["serving_default"](prompt_ids=tf.constant(pad_batch(read), tf.int32))
    assert rows(out["reply_ids"].numpy(), out["reply_length"].numpy()) == reference(
        bot.engine, read, bot.vocab, bot.decode)


# --- the command --------------------------------------------------------------------------------


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chatbot.cli", "export", *args],
                          capture_output=True, cwd=cwd, timeout=300)


def test_a_missing_model_is_named_without_a_traceback(tmp_path):
    result = run_cli("--model", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    assert f"{tmp_path / 'nowhere'}: no such model directory" in result.stderr.decode()
    assert b"Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_an_existing_output_needs_overwrite(tiny_run, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "mine").mkdir(parents=True)
    result = run_cli("--model", str(tiny_run), "-o", str(out))
    assert result.returncode == 1
    assert f"{out} already exists; pass --overwrite" in result.stderr.decode()
    assert b"Traceback" not in result.stderr
    # Nor does --overwrite replace a directory that is not an export.
    result = run_cli("--model", str(tiny_run), "-o", str(out), "--overwrite")
    assert result.returncode == 1 and b"is not an earlier export" in result.stderr
    assert (out / "mine").is_dir()
    # An earlier export is replaced whole, with nothing left beside it.
    shutil.rmtree(out)
    # docs: chatbot export --model models/mine -o export/mine
    # docs: chatbot export --model models/default --format saved_model -o export/chatbot
    assert main(["export", "--model", str(tiny_run), "-o", str(out)]) == 0
    assert main(["export", "--model", str(tiny_run), "-o", str(out), "--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out / VERSION}" in printed and "serving_default, reply_text" in printed
    assert "without the run's loop_guard 3, retrieval" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == [VERSION]


@pytest.mark.slow
def test_an_unfinished_run_or_the_run_itself_is_refused(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    result = run_cli("--model", str(run), "-o", str(run), "--overwrite")
    assert result.returncode == 1 and b"would replace the run directory" in result.stderr
    write_json(run / STATUS, {"state": "training"})
    result = run_cli("--model", str(run), "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "training has not finished" in result.stderr.decode()
    assert b"Traceback" not in result.stderr


def test_format_choices_come_from_the_exporter(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--format", "onnx", "-o", "x"])
    assert "choose from 'saved_model'" in capsys.readouterr().err

