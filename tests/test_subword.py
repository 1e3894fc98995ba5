"""Subword tokens: text comes back as it went in (English, Chinese, full-width punctuation,
emoji), nothing is ever <UNK>, and a `--tokenizer sentencepiece` run keeps its model in the run
directory, through chat, resume and fine-tuning."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatbot.cli import main
from chatbot.config import TextConfig
from chatbot.decoding.bot import Bot
from chatbot.errors import ChatbotError
from chatbot.rundir import TOKENIZER, read_backup
from chatbot.text.subword import SubwordTokenizer
from chatbot.text.tokenizer import SUBWORD_MODELS, train_tokenizer
from chatbot.text.vocab import SPECIALS, Vocabulary
from chatbot.text.words import normalize
from chatbot.training.callbacks import EpochBackup
from tests.conftest import TINY_PAIRS, shared, tiny_config, write_tsv

CORPUS = [text for pair in TINY_PAIRS for text in pair] + [
    "What is your favourite book?", "I like reading about science and history.",
    "今天天气怎么样？", "今天天气很好，我们去公园吧。", "“你好”（问候）——《礼记》…",
]
# Unseen words and characters: full-width Latin, a CJK Extension B ideograph, Cyrillic,
# accents, emoji with a skin tone and a zero-width joiner, and spaces to collapse.
TEXTS = [
    "Hello, how are you?", "你好！很高兴认识你。", "今天天气怎么样？我很好，谢谢。",
    "“引号”（括号）《书名》……", "ＦＵＬＬ－ｗｉｄｔｈ，ＡＢＣ！", "𠀀 is rare; so is Ω",
    "Привет, мир", "café naïve", "emoji 😀👍🏽 and 👩‍💻 too",
    "  several   spaces\there ",
]


def settings(model: str = "unigram", vocab: int = 4000, lowercase: bool = True) -> TextConfig:
    return TextConfig(lowercase=lowercase, tokenizer="sentencepiece", subword_vocab=vocab,
                      subword_model=model)


def as_read(text: str, lowercase: bool = True) -> str:
    """The text a tokenizer reads (NFC, case folded), with runs of whitespace as one space."""
    return " ".join(normalize(text, lowercase).split())


@functools.cache
def unigram() -> SubwordTokenizer:
    return train_tokenizer(settings(), CORPUS)


@pytest.fixture(scope="module", params=SUBWORD_MODELS)
def tokenizer(request) -> SubwordTokenizer:
    return train_tokenizer(settings(request.param), CORPUS)


def test_text_comes_back_as_it_was_read_through_the_vocabulary(tokenizer):
    vocab = Vocabulary([*SPECIALS, *tokenizer.pieces])
    for text in TEXTS:
        ids = vocab.encode(tokenizer.tokenize(text))
        assert tokenizer.detokenize(vocab.decode(ids)) == as_read(text), text


# Any text but lone surrogates (not UTF-8) and "▁" (U+2581), which sentencepiece reads as the
# space it writes it for.
@given(text=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="▁")))
def test_any_text_comes_back_as_it_was_read(text):
    tokenizer = unigram()  # (not a fixture: hypothesis calls the test many times)
    vocab = Vocabulary([*SPECIALS, *tokenizer.pieces])
    ids = vocab.encode(tokenizer.tokenize(text))
    assert vocab.unk_id not in ids
    assert tokenizer.detokenize(vocab.decode(ids)) == as_read(text)



def test_token_texts_are_what_each_token_adds(tokenizer):
    for text in [*TEXTS, "naïve ☃ 𝄞"]:  # (the last in byte pieces)
        tokens = tokenizer.tokenize(text)
        texts = tokenizer.token_texts(tokens)
        assert "".join(texts) == tokenizer.detokenize(tokens), text

def test_unseen_characters_become_byte_pieces_never_unk(tokenizer):
    vocab = Vocabulary([*SPECIALS, *tokenizer.pieces])
    for text in TEXTS:
        tokens = tokenizer.tokenize(text)
        assert vocab.unk_id not in vocab.encode(tokens) and vocab.unknown(tokens) == [], text
    assert tokenizer.tokenize("𠀀") == ["▁", "<0xF0>", "<0xA0>", "<0x80>", "<0x80>"]


def test_chinese_full_width_punctuation_is_not_folded_to_ascii(tokenizer):
    tokens = tokenizer.tokenize("你好，世界！")
    assert "，" in "".join(tokens) and "," not in "".join(tokens)
    assert tokenizer.detokenize(tokens) == "你好，世界！"


def test_frequent_words_are_pieces_of_their_own():
    tokenizer = train_tokenizer(settings("bpe"), CORPUS)
    assert tokenizer.tokenize("What is your name?") == ["▁what", "▁is", "▁your", "▁name", "?"]


def test_case_is_kept_when_asked():
    tokenizer = train_tokenizer(settings(lowercase=False), CORPUS)
    assert tokenizer.detokenize(tokenizer.tokenize("Hello World")) == "Hello World"


def test_training_is_deterministic_and_the_size_a_maximum():
    first, second = train_tokenizer(settings(), CORPUS), train_tokenizer(settings(), CORPUS)
    assert first.model == second.model
    assert 256 < len(first.pieces) < 4000  # a small corpus gets fewer pieces than asked


def test_a_vocabulary_too_small_for_the_characters_says_how_big_it_must_be():
    with pytest.raises(ChatbotError, match=r"subword_vocab 100 is too small for this text: "
                                           r"its characters and the 256 byte pieces alone need "
                                           r"\d+; pass --subword-vocab \d+ or more"):
        train_tokenizer(settings(vocab=100), CORPUS)


def test_bad_settings_and_no_text_are_refused():
    with pytest.raises(ChatbotError, match="subword_model is 'wordpiece'; choose one of: "
                                           "unigram, bpe"):
        train_tokenizer(settings("wordpiece"), CORPUS)
    with pytest.raises(ChatbotError, match="no text"):
        train_tokenizer(settings(), ["", "  "])


def test_save_and_load_round_trip(tokenizer, tmp_path):
    tokenizer.save(tmp_path / TOKENIZER)
    loaded = SubwordTokenizer.load(tmp_path / TOKENIZER, lowercase=True)
    assert loaded.model == tokenizer.model and loaded.pieces == tokenizer.pieces
    assert [loaded.tokenize(t) for t in TEXTS] == [tokenizer.tokenize(t) for t in TEXTS]
    assert [p.name for p in tmp_path.iterdir()] == [TOKENIZER]  # no temporary file left


def test_a_damaged_or_missing_model_file_is_named(tokenizer, tmp_path):
    path = tmp_path / TOKENIZER
    path.write_bytes(tokenizer.model[:50])
    with pytest.raises(ChatbotError, match=f"{path}: not a sentencepiece model; the file is "
                                           "damaged: retrain the model"):
        SubwordTokenizer.load(path)
    path.unlink()
    with pytest.raises(ChatbotError, match=f"{path}: missing"):
        SubwordTokenizer.load(path)


# --- a run trained with --tokenizer sentencepiece -------------------------------------------


# Until the model alone answers every training prompt (the stop rule: 22 epochs), at most 60.
TRAIN_FLAGS = ["--preset", "tiny", "--tokenizer", "sentencepiece", "--subword-model", "bpe",
               "--epochs", "60", "--patience", "60", "--learning-rate", "5e-2",
               "--monitor", "answer_rate", "--stop-at", "1", "--batch-size", "4",
               "--val-fraction", "0"]


@pytest.fixture(scope="module")
def spm_run(tmp_path_factory):
    """`chatbot train --tokenizer sentencepiece` on TINY_PAIRS (about 20 s)."""
    def build(root):
        root.mkdir()
        data = write_tsv(root / "tiny.tsv")
        # docs: chatbot train --data my_pairs.tsv --out models/pieces --tokenizer sentencepiece \
        #       --subword-vocab 4000
        assert main(["train", "--data", str(data), "--out", str(root / "run"), *TRAIN_FLAGS]) == 0

    return shared(tmp_path_factory, "spm", {"tiny": build})["tiny"] / "run"


@pytest.mark.slow
def test_the_run_keeps_its_tokenizer_and_answers_its_training_prompts(spm_run):
    assert (spm_run / TOKENIZER).is_file()
    config = json.loads((spm_run / "config.json").read_text())
    assert config["text"]["tokenizer"] == "sentencepiece"
    bot = Bot.load(spm_run)
    assert isinstance(bot.tokenizer, SubwordTokenizer)
    assert bot.tokenizer.model == (spm_run / TOKENIZER).read_bytes()
    assert bot.vocab.tokens == [*SPECIALS, *bot.tokenizer.pieces]
    for prompt, reply in TINY_PAIRS:
        assert bot.reply(prompt).text == as_read(reply), prompt
    metrics = json.loads((spm_run / "metrics.json").read_text())
    assert metrics["train"]["answer_rate"]["answer_rate"] == 1.0


@pytest.mark.slow
def test_nothing_a_user_types_is_unknown_to_a_sentencepiece_run(spm_run, capsys):
    bot = Bot.load(spm_run)
    reply = bot.reply("hello zebra 🦓 ＡＢＣ 𠀀")
    assert reply.unknown == [] and reply.text
    assert bot.speller is None and reply.corrected == []  # a typo is spelt by other pieces
    assert main(["reply", "--model", str(spm_run), "hello zebra 🦓"]) == 0
    assert "not in the vocabulary" not in capsys.readouterr().err


@pytest.mark.slow
def test_chat_time_needs_no_tensorflow(spm_run):
    from tests.helpers import WITHOUT_TENSORFLOW

    result = subprocess.run([*WITHOUT_TENSORFLOW, "reply", "--model", str(spm_run), "你好"],
                            capture_output=True, timeout=120)
    assert result.stderr.decode() == "blocked imports: []\n"
    assert result.stdout.decode() == "你好！很高兴认识你。\n"


@pytest.mark.slow
def test_a_damaged_missing_or_foreign_tokenizer_file_is_refused(spm_run, tmp_path, capsys):
    run = shutil.copytree(spm_run, tmp_path / "run")
    (run / TOKENIZER).write_bytes(b"not a model")
    assert main(["reply", "--model", str(run), "hello"]) == 1
    err = capsys.readouterr().err
    assert err == (f"chatbot: error: {run / TOKENIZER}: not a sentencepiece model; the file is "
                   "damaged: retrain the model\n")
    (run / TOKENIZER).unlink()
    with pytest.raises(ChatbotError, match=f"{run / TOKENIZER}: missing"):
        Bot.load(run)
    train_tokenizer(settings(), ["some other text entirely"]).save(run / TOKENIZER)
    with pytest.raises(ChatbotError, match="pieces of the sentencepiece model .* the files are "
                                           "from different runs; retrain the model"):
        Bot.load(run)


@pytest.mark.slow
def test_resume_keeps_the_tokenizer_even_on_other_data(tmp_path, monkeypatch):
    from chatbot.training.train import train as train_run

    data = write_tsv(tmp_path / "tiny.tsv")
    config = tiny_config(epochs=4, run_eagerly=True)
    config.text = settings("bpe")
    back_up = EpochBackup.on_epoch_end

    def killed_after_epoch_2(self, epoch, logs=None):
        back_up(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(EpochBackup, "on_epoch_end", killed_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_run(data, tmp_path / "run", config, log=lambda _: None, verbose=0)
    monkeypatch.undo()
    assert read_backup(tmp_path / "run").epoch == 2
    model, vocab = ((tmp_path / "run" / name).read_bytes() for name in (TOKENIZER, "vocab.json"))
    other = write_tsv(tmp_path / "other.tsv", [("zebra crossing", "stripes"), *TINY_PAIRS])
    lines: list[str] = []
    train_run(other, tmp_path / "run", resume=True, log=lines.append, verbose=0)
    assert f"resuming {tmp_path / 'run'} after epoch 2 of 4" in lines
    assert (tmp_path / "run" / TOKENIZER).read_bytes() == model
    assert (tmp_path / "run" / "vocab.json").read_bytes() == vocab
    assert not any("<UNK>" in line for line in lines)  # new words are pieces of the old model
    assert Bot.load(tmp_path / "run").tokenizer.model == model


@pytest.mark.slow
def test_init_from_keeps_the_tokenizer_and_learns_the_new_pairs(spm_run, tmp_path):
    from chatbot.training.train import train as train_run

    new = write_tsv(tmp_path / "new.tsv", [("hello zebra", "my name is bot."),
                                           ("hello", "hi there!")])
    lines: list[str] = []
    config = tiny_config(epochs=30)  # asks for words: the old run's tokenizer wins
    train_run(new, tmp_path / "tuned", config, init_from=spm_run, log=lines.append, verbose=0)
    tuned = tmp_path / "tuned"
    assert (tuned / TOKENIZER).read_bytes() == (spm_run / TOKENIZER).read_bytes()
    assert json.loads((tuned / "config.json").read_text())["text"] == json.loads(
        (spm_run / "config.json").read_text())["text"]
    assert not any("<UNK>" in line for line in lines)  # "zebra": pieces, not <UNK>
    bot = Bot.load(tuned)
    assert bot.reply("hello zebra").text == "my name is bot."
    assert bot.reply("hello").text == "hi there!"


@pytest.mark.slow
def test_overwrite_with_a_word_run_removes_the_tokenizer(spm_run, tmp_path):
    from chatbot.training.train import train as train_run

    run = shutil.copytree(spm_run, tmp_path / "run")
    train_run(write_tsv(tmp_path / "tiny.tsv"), run, tiny_config(epochs=1, run_eagerly=True),
              overwrite=True, log=lambda _: None, verbose=0)
    assert not (run / TOKENIZER).exists()
    assert Bot.load(run).tokenizer.tokenize("你好") == ["你", "好"]


def test_data_check_reports_tokens_per_pair_under_each_tokenizer(tmp_path):
    path = write_tsv(tmp_path / "pairs.tsv", [*TINY_PAIRS, ("what is your name?", "bot.")])
    result = subprocess.run([sys.executable, "-m", "chatbot.cli", "data", "check", str(path)],
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    word = next(line for line in lines if line.startswith("tokens per pair word "))
    pieces = lines[lines.index(word) + 1]
    assert pieces.startswith(" " * 16 + "sentencepiece (unigram, ")
    assert "mean " in word and "mean " in pieces and " max " in pieces
