"""Typing noise drawn in the training stream on token ids (chatbot.training.stream_noise), and
the shard batches that carry it (chatbot.training.stream_batches)."""

from __future__ import annotations

import numpy as np
import pytest

from chatbot.text.vocab import SPECIALS, Vocabulary
from chatbot.text.words import Tokenizer
from chatbot.training.stream_noise import StreamNoise

WORDS = ["?", ".", "!", "？", "。", "！", "what", "is", "your", "name", "how", "are", "you", "你",
         "好", "吗", "oh", ",", "please", "喂", "，", "tell", "me"]
VOCAB = Vocabulary([*SPECIALS, *WORDS])
TOKENIZER = Tokenizer()
MAX_LEN = 8
DRAWS = 300


def ids(text: str) -> list[int]:
    return VOCAB.encode(TOKENIZER.tokenize(text))


def drawn(noise: StreamNoise, prompt: list[int], draws: int = DRAWS, stream: int = 1):
    """`draws` noisy copies of `prompt`, the k-th drawn with the seed (stream, k)."""
    import tensorflow as tf

    tables = noise.tables(tf)
    copy = tf.function(lambda p, seed: noise.copy(tf, tables, p, seed))
    p = tf.constant(prompt, tf.int32)
    return [tuple(copy(p, tf.constant([stream, k], tf.int64)).numpy().tolist())
            for k in range(draws)]


def allowed(noise: StreamNoise, prompt: list[int]) -> dict[tuple, set[str]]:
    """Every copy the module's doc allows for `prompt`, with the changes that make it."""
    final = {VOCAB.index[m] for m in ("?", ".", "!", "？", "。", "！")}
    chinese = any(any("\u4e00" <= ch <= "\u9fff" for ch in VOCAB.tokens[i]) for i in prompt)
    tail = 0
    while tail < len(prompt) and prompt[len(prompt) - 1 - tail] in final:
        tail += 1
    body = prompt[: len(prompt) - tail]
    marks = noise.zh_marks if chinese else noise.marks
    endings = [prompt[len(prompt) - tail:], *([[]] if tail else []), *([m] for m in marks)]
    out: dict[tuple, set[str]] = {}

    def add(copy, kind):
        out.setdefault(tuple(copy[:MAX_LEN]), set()).add(kind)

    for ending in endings:
        text = body + ending if body else prompt
        b = len(body)
        add(text, "final")
        for at in range(b):
            if noise.long[text[at]]:
                add(text[:at] + [VOCAB.unk_id] + text[at + 1:], "typo")
            if b >= 4:
                add(text[:at] + text[at + 1:], "drop")
            if not chinese:
                for word in noise.words:
                    add(text[:at] + [word] + text[at:], "insert")
        for lead in noise.leads[1 if chinese else 0]:
            add(lead + text, "lead")
        if chinese:
            add([noise.width[i] for i in text], "chinese")
            if b and noise.particle[text[b - 1]]:
                add(text[: b - 1] + text[b:], "chinese")
    return out


@pytest.mark.parametrize("text", ["what is your name?", "how are you", "你好吗？", "name", "?", ""])
def test_each_copy_is_one_the_changes_allow_and_each_change_is_drawn(text):
    noise = StreamNoise(VOCAB, TOKENIZER.tokenize, MAX_LEN)
    prompt = ids(text)
    copies = drawn(noise, prompt)
    can = allowed(noise, prompt)
    assert set(copies) <= set(can), [c for c in copies if c not in can]
    kinds = {kind for copy in copies for kind in can[copy]}
    expected = {"final", "lead", "insert"} | (
        {"typo"} if text in ("what is your name?", "name") else set()) | (
        {"drop"} if text == "what is your name?" else set())  # of four words or more
    if text == "你好吗？":
        expected = {"final", "lead", "chinese"}  # a word is put in English prompts only
    if text in ("?", ""):
        expected = {"final", "lead"}  # no word to change: a lead word, or nothing
    assert kinds == expected
    assert all(len(copy) <= MAX_LEN for copy in copies)
    if text not in ("?", ""):
        assert sum(copy != tuple(prompt) for copy in copies) > 0.8 * DRAWS  # most differ


def test_copies_are_the_same_for_the_same_seed_and_differ_for_another():
    noise = StreamNoise(VOCAB, TOKENIZER.tokenize, MAX_LEN)
    prompt = ids("what is your name?")
    assert drawn(noise, prompt, 40) == drawn(noise, prompt, 40)
    assert drawn(noise, prompt, 40) != drawn(noise, prompt, 40, stream=2)


def test_the_tables_follow_the_vocabulary_and_the_tokenizer():
    noise = StreamNoise(VOCAB, TOKENIZER.tokenize, MAX_LEN)
    long = {VOCAB.tokens[i] for i, flag in enumerate(noise.long) if flag}
    assert long == {"what", "your", "name", "please", "tell"}
    assert [VOCAB.tokens[i] for i in noise.marks] == ["?", ".", "!"]
    assert VOCAB.tokens[noise.width[VOCAB.index["？"]]] == "?"
    assert VOCAB.tokens[noise.width[VOCAB.index[","]]] == "，"
    # Lead words the vocabulary holds, with a comma or without: "oh", "please", "tell me".
    leads = {" ".join(VOCAB.tokens[i] for i in lead) for lead in noise.leads[0]}
    assert leads == {"oh ,", "oh", "please ,", "please", "tell me ,", "tell me"}
    assert {" ".join(VOCAB.tokens[i] for i in lead) for lead in noise.leads[1]} == {"喂 ，"}
    # sentencepiece reads a misspelt word as other pieces, not <UNK>: no typos then.
    assert not any(StreamNoise(VOCAB, TOKENIZER.tokenize, MAX_LEN, typos=False).long)


def test_a_vocabulary_without_marks_or_lead_words_still_gets_its_noise():
    vocab = Vocabulary([*SPECIALS, "what", "is", "your", "name"])
    noise = StreamNoise(vocab, TOKENIZER.tokenize, MAX_LEN)
    assert noise.marks == [] and noise.leads == ([[]], [[]])
    prompt = vocab.encode(["what", "is", "your", "name"])
    copies = set(drawn(noise, prompt, 100))
    assert tuple(prompt) in copies and len(copies) > 5
    assert all(len(c) in (3, 4, 5) and set(c) <= set(range(len(vocab))) for c in copies)


# --- in the shard batches ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A prepared directory without noisy copies."""
    from chatbot.training.prepare_corpus import prepare_corpus
    from tests.test_shards import config, numbered_pairs, write_tsv

    root = tmp_path_factory.mktemp("plain")
    data = write_tsv(root / "pairs.tsv", numbered_pairs(120))
    c = config(noise_copies=0)
    c.data.val_fraction = 0.0
    prepare_corpus([data], root / "out", c, shard_size=50, memory_cap=100, log=lambda _: None)
    return root / "out"


def batches(prepared, **options):
    from chatbot.models import arch_module
    from chatbot.training.shards import read_manifest
    from chatbot.training.stream_batches import ShardBatches

    vocab = Vocabulary.load(prepared / "vocab.json")
    noise = StreamNoise(vocab, TOKENIZER.tokenize, 40)
    return ShardBatches(read_manifest(prepared), "train", vocab,
                        arch_module("lstm").encode_example, batch_size=8, seed=1, noise=noise,
                        **{"noise_pool": 8, **options})


def split_rows(rows: list[tuple], sep: int) -> list[tuple[tuple, tuple]]:
    """(prompt, reply) of each lstm row (<SOS> prompt <SEP> reply, then its target)."""
    out = []
    for tokens, _ in rows:
        at = tokens.index(sep)
        out.append((tokens[1:at], tokens[at + 1:]))
    return out


def test_a_record_comes_with_noisy_copies_of_its_prompt_the_next_of_its_pool(plain):
    import tensorflow as tf

    two = batches(plain, noise_copies=2, noise_pool=6)
    assert two.fresh == 2 and two.rows_per_epoch == 3 * two.manifest.pairs["train"]
    two.noise = StreamNoise(VOCAB, TOKENIZER.tokenize, MAX_LEN)  # to draw on ids(...)
    tables = two.noise.tables(tf)
    prompt, reply = tf.constant(ids("what is your name?")), tf.constant([7, 8, 9])

    def with_copies(p, key):
        copy, keys, prompts, replies = two._with_copies(
            tf, tables, tf.constant(p, tf.int64), 0, tf.constant(key, tf.int64), prompt, reply)
        assert keys.numpy().tolist() == [key] * 3
        return copy.numpy().tolist(), prompts.to_list(), replies.to_list()

    copy, prompts, replies = with_copies(0, 5)
    assert copy == [0, 1, 2] and replies == [[7, 8, 9]] * 3
    assert prompts[0] == ids("what is your name?")  # the original first
    can = allowed(two.noise, prompts[0])
    assert all(tuple(p) in can for p in prompts[1:])
    # A pool of 6: passes 0, 1 and 2 see its copies 0-1, 2-3 and 4-5; pass 3 0-1 again.
    pool = [tuple(map(tuple, with_copies(p, 5)[1][1:])) for p in range(4)]
    assert pool[3] == pool[0] and len(set(pool[:3])) == 3
    assert with_copies(0, 6)[1] != with_copies(0, 5)[1]  # another record, other copies


def test_the_stream_holds_the_pairs_and_noisy_copies_with_their_replies(plain):
    from tests.test_shards import rows

    one = batches(plain, noise_copies=1)
    sep = one.vocab.sep_id
    plain_batches = batches(plain, noise_copies=0)
    originals = set(split_rows(rows(plain_batches.dataset().take(10 * plain_batches.steps())),
                               sep))
    assert len(originals) == one.manifest.pairs["train"]
    prompt_of = dict((reply, prompt) for prompt, reply in originals)  # replies differ
    seen = split_rows(rows(one.dataset().take(4 * one.steps())), sep)
    assert all(reply in prompt_of for _, reply in seen)  # each copy keeps its reply
    noisy = sum(prompt != prompt_of[reply] for prompt, reply in seen)
    assert 0.35 < noisy / len(seen) < 0.5  # half are copies, of which most differ


def test_a_resumed_stream_draws_the_noise_the_run_would_have(plain):
    from tests.test_shards import rows

    whole = batches(plain, noise_copies=1).dataset()
    steps = batches(plain, noise_copies=1).steps()
    first_three = [b for _, b in zip(range(3 * steps), whole)]
    resumed = [b for _, b in zip(range(steps), batches(plain, noise_copies=1,
                                                       epoch=2).dataset())]
    assert rows(resumed) == rows(first_three[2 * steps:])


def test_shards_with_noisy_copies_are_read_as_they_are_not_noised_again(tmp_path):
    from chatbot.training.prepare_corpus import prepare_corpus
    from tests.test_shards import config, numbered_pairs, write_tsv

    data = write_tsv(tmp_path / "pairs.tsv", numbered_pairs(40))
    c = config(noise_copies=1)
    c.data.val_fraction = 0.0
    prepare_corpus([data], tmp_path / "out", c, log=lambda _: None)
    held = batches(tmp_path / "out", noise_copies=1)
    assert held.fresh == 0 and held.per_epoch == 1
    assert held.rows_per_epoch == 2 * held.manifest.pairs["train"]
    assert np.array_equal(held.manifest.raw["noise_copies"], 1)
