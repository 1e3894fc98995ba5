"""Corpora larger than memory: streaming the pairs, `chatbot data prepare`'s shards and manifest,
the batches streamed from them, and a run trained on them."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys

import numpy as np
import pytest

from chatbot.config import RunConfig
from chatbot.data import stream
from chatbot.data.frequent import FrequentPrompts
from chatbot.data.pairs import Pair
from chatbot.data.stream import Seen, StreamReport, split_of, stream_pairs
from chatbot.errors import ChatbotError
from chatbot.models import ARCHS, arch_module
from chatbot.text.vocab import Vocabulary
from chatbot.training import prepare_corpus as prepare_corpus_module
from chatbot.training import prepare_tokens
from chatbot.training import shards as shards_module
from chatbot.training.prepare_corpus import prepare_corpus, read_pairs_file
from chatbot.training.shards import (
    MANIFEST,
    decode_record,
    encode_record,
    read_manifest,
    read_remap,
    tfrecord,
)
from tests.conftest import TINY_PAIRS, write_tsv

CONVERSATION = {"messages": [{"role": "user", "content": "hi"},
                             {"role": "assistant", "content": "hello!"},
                             {"role": "user", "content": "how are you?"},
                             {"role": "assistant", "content": "fine.\tthanks"}]}


def config(**train) -> RunConfig:
    c = RunConfig()
    c.data.val_fraction = 0.0
    for name, value in train.items():
        setattr(c.train, name, value)
    return c


def numbered_pairs(n: int) -> list[tuple[str, str]]:
    return [(f"question {i} about item {i % 7}?", f"answer {i} is {i * 3}.") for i in range(n)]


# --- streaming the pairs -----------------------------------------------------------------------


def test_stream_reads_tsv_and_gzip_jsonl_line_by_line_with_their_line_numbers(tmp_path):
    tsv = tmp_path / "a.tsv"
    tsv.write_bytes(b"\xef\xbb\xbfhi\tthere\r\n\nx\ty\rz\tw\n")
    jsonl = tmp_path / "b.jsonl.gz"
    with gzip.open(jsonl, "wt", encoding="utf-8") as f:
        f.write(json.dumps(CONVERSATION) + "\n")
    report = StreamReport([])
    got = list(stream_pairs([tsv, jsonl], "error", report))
    assert [(i, p.prompt, p.reply, p.line) for i, p in got] == [
        (0, "hi", "there", 1), (0, "x", "y", 3), (0, "z", "w", 4),
        (1, "hi", "hello!", 1), (1, "how are you?", "fine. thanks", 1)]
    assert got[-1][1].context == ("hi", "hello!")
    assert (report.lines, report.blank_lines, report.conversations) == (5, 1, 1)


def test_a_bad_line_is_named_by_file_and_line_or_counted_when_skipped(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(b"a\tb\nno tab here\nc\t\n")
    with pytest.raises(ChatbotError, match=r"pairs\.tsv:2: expected 2 tab-separated columns"):
        list(stream_pairs([path]))
    report = StreamReport([])
    assert [p.prompt for _, p in stream_pairs([path], "skip", report)] == ["a"]
    assert report.bad_count == 2 and [b[1] for b in report.bad_lines] == [2, 3]


def test_a_line_longer_than_the_bound_is_a_bad_line_and_is_never_read_whole(tmp_path,
                                                                           monkeypatch):
    monkeypatch.setattr(stream, "MAX_LINE_BYTES", 64)
    path = tmp_path / "pairs.tsv"
    path.write_bytes(b"a\tb\n" + b"x" * 1000 + b"\tlong\n" + b"c\td\n")
    report = StreamReport([])
    pairs = [(p.prompt, p.line) for _, p in stream_pairs([path], "skip", report)]
    assert pairs == [("a", 1), ("c", 3)]
    assert "longer than" in report.bad_lines[0][2] and report.bad_lines[0][1] == 2


def test_not_gzip_and_missing_files_are_named(tmp_path):
    fake = tmp_path / "pairs.tsv.gz"
    fake.write_text("a\tb\n")
    with pytest.raises(ChatbotError, match="not a gzip file"):
        list(stream_pairs([fake]))
    with pytest.raises(ChatbotError, match="no such file"):
        list(stream_pairs([tmp_path / "absent.tsv"]))


def test_seen_finds_repeats_before_and_after_its_merges():
    seen = Seen(pending=3)
    rng = random.Random(0)
    keys = [rng.getrandbits(64) for _ in range(20)]
    assert not any(seen.add(k) for k in keys[:10])
    assert all(seen.add(k) for k in keys[:10])  # most of them merged into the sorted array
    assert not any(seen.add(k) for k in keys[10:])
    assert len(seen) == 20


def test_the_split_is_by_prompt_stable_and_near_its_fraction():
    pairs = [Pair(p, r, i + 1) for i, (p, r) in enumerate(numbered_pairs(20000))]
    sides = [split_of(p, 0.1, 1234) for p in pairs]
    assert 0.09 < sides.count("validation") / len(sides) < 0.11
    again = [split_of(Pair(p.prompt, "another reply", 99), 0.1, 1234) for p in pairs]
    assert again == sides  # the prompt decides: the same prompt never lands on both sides
    other_seed = [split_of(p, 0.1, 99) for p in pairs]
    assert other_seed != sides
    turns = [Pair(f"turn {i}", "r", 7, ("earlier",)) for i in range(50)]
    assert len({split_of(p, 0.5, 1234, file=2) for p in turns}) == 1  # a conversation stays


def test_frequent_prompts_keep_the_most_frequent_through_pruning():
    counter = FrequentPrompts(cap=3)
    rng = random.Random(0)
    stream_of = ["hi"] * 50 + ["bye"] * 30 + ["thanks"] * 20 + [f"rare {i}" for i in range(40)]
    rng.shuffle(stream_of)
    for i, prompt in enumerate(stream_of):
        counter.add(Pair(prompt, f"reply {i}", i + 1))
    assert [p.prompt for p in counter.pairs()] == ["hi", "bye", "thanks"]
    assert not counter.exact


def test_frequent_prompts_tell_those_never_seen_on_the_training_side():
    counter = FrequentPrompts(cap=10)
    for prompt, trained in (("hi", False), ("hi", True), ("bye", False), ("bye", False),
                            ("bye", False), ("thanks", True)):
        counter.add(Pair(prompt, "r", 1), trained)
    assert [p.prompt for p in counter.pairs()] == ["bye", "hi", "thanks"]
    assert counter.untrained() == [0]  # bye: validation only; hi: on both sides


# --- chatbot data prepare ----------------------------------------------------------------------


def test_our_tfrecords_are_what_tensorflow_reads(tmp_path):
    import tensorflow as tf

    records = [encode_record(0, [1, 2, 3], [4]), encode_record(2, [], [5, 6]), b""]
    path = tmp_path / "x.tfrecord"
    path.write_bytes(b"".join(tfrecord(r) for r in records))
    assert [r.numpy() for r in tf.data.TFRecordDataset([str(path)])] == records
    assert decode_record(records[1]) == (2, [], [5, 6])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    pairs = numbered_pairs(300) + numbered_pairs(20)  # 20 exact repeats
    data = write_tsv(root / "pairs.tsv", pairs)
    c = config(noise_copies=2)
    c.data.val_fraction = 0.2
    prepare_corpus([data], root / "out", c, shard_size=50, memory_cap=100, log=lambda _: None)
    return root / "out"


def test_the_known_prompts_a_run_is_measured_on_are_those_it_trains_on(prepared):
    from chatbot.data.stream import split_of
    from chatbot.training.from_shards import measured_pairs
    from chatbot.training.prepare_corpus import MEASURE_SAMPLE
    from chatbot.training.shards import MEMORY_PAIRS

    manifest = read_manifest(prepared)
    memory = read_pairs_file(prepared / MEMORY_PAIRS)
    sides = [split_of(p, 0.2, manifest.raw["seed"]) for p in memory]  # a TSV: by its prompt
    assert "validation" in sides and "train" in sides  # the memory holds both sides
    held_out = manifest.raw["memory"]["validation_only"]
    assert held_out == [p.line for p, side in zip(memory, sides) if side == "validation"]
    known, _ = measured_pairs(prepared, seed=3)
    assert known and not {p.line for p in known} & set(held_out)
    assert len(known) == min(len(memory) - len(held_out), MEASURE_SAMPLE)


def test_prepare_writes_every_pair_once_into_checked_shards(prepared):
    manifest = read_manifest(prepared, verify=True)
    raw = manifest.raw
    assert raw["duplicates"] == 20 and sum(raw["pairs"].values()) == 300
    assert manifest.examples("train") == raw["pairs"]["train"] * 3  # two noisy copies each
    assert manifest.examples("validation") == raw["pairs"]["validation"]
    assert 40 < raw["pairs"]["validation"] < 80
    assert all(s["examples"] <= 50 for s in raw["shards"])
    vocab = Vocabulary.load(prepared / "vocab.json")
    remap = read_remap(manifest)
    copies = []
    for path in manifest.shards("train"):
        for copy, prompt, reply in shard_records(path):
            copies.append(copy)
            assert vocab.decode(remap[reply])[0] == "answer"
            if not copy:  # (a noisy copy's typo may be a word of no pair)
                assert vocab.unk_id not in remap[prompt]
    assert sorted(set(copies)) == [0, 1, 2] and copies.count(1) == copies.count(0)
    memory = read_pairs_file(prepared / "memory.jsonl")
    assert len(memory) == 100 and raw["memory"] == {
        "kept": 100, "cap": 100, "exact": False,
        "validation_only": raw["memory"]["validation_only"]}  # (checked below)


def shard_records(path) -> list[tuple[int, list[int], list[int]]]:
    """The records of a shard, decoded: (copy, prompt numbers, reply numbers)."""
    data, records = path.read_bytes(), []
    while data:  # the TFRecord framing: length, its CRC, data, its CRC
        length = int.from_bytes(data[:8], "little")
        records.append(decode_record(data[12: 12 + length]))
        data = data[16 + length:]
    return records


def test_a_sentencepiece_prepare_writes_the_pieces_of_its_own_model(tmp_path):
    from chatbot.rundir import TOKENIZER
    from chatbot.text.subword import SubwordTokenizer

    c = config(noise_copies=1)
    c.text.tokenizer, c.text.subword_vocab = "sentencepiece", 300
    pairs = numbered_pairs(200)
    out = tmp_path / "out"
    said = []
    prepare_corpus([write_tsv(tmp_path / "pairs.tsv", pairs)], out, c, shard_size=100,
                   log=said.append)
    assert any("learning a sentencepiece model from 400 of 400 texts" in s for s in said)
    manifest = read_manifest(out, verify=True)
    assert manifest.raw["text"]["tokenizer"] == "sentencepiece"
    assert not (out / "remap.npy").exists() and read_remap(manifest) is None
    tokenizer, vocab = SubwordTokenizer.load(out / TOKENIZER), Vocabulary.load(out / "vocab.json")
    written = {}
    for path in manifest.shards("train"):
        data = path.read_bytes()
        while data:
            length = int.from_bytes(data[:8], "little")
            copy, prompt, reply = decode_record(data[12: 12 + length])
            if not copy:
                written[tuple(prompt)] = reply
            data = data[16 + length:]
    assert len(written) == manifest.raw["pairs"]["train"] == 200
    for prompt, reply in pairs:  # the ids of the model's own pieces, with no <UNK>
        ids = vocab.encode(tokenizer.tokenize(prompt))
        assert written[tuple(ids)] == vocab.encode(tokenizer.tokenize(reply))
        assert vocab.unk_id not in ids


def test_a_damaged_shard_is_named(prepared, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(prepared, copy)
    shard = read_manifest(copy).shards("train")[0]
    data = bytearray(shard.read_bytes())
    data[20] ^= 0xFF
    shard.write_bytes(bytes(data))
    read_manifest(copy)  # the size is right: only the digest tells
    with pytest.raises(ChatbotError, match=f"{shard.name}: its SHA-256"):
        read_manifest(copy, verify=True)
    shard.write_bytes(bytes(data[:-1]))
    with pytest.raises(ChatbotError, match="not the size the manifest records"):
        read_manifest(copy)
    shard.unlink()  # a worker may hold only its own shards: the reader names what it lacks
    with pytest.raises(ChatbotError, match=f"{shard.name}: missing \\(1 of the"):
        shard_batches(copy).dataset()
    shard_batches(copy).dataset(shard=1, shards=2)  # worker 1 reads the other shards


def test_a_worker_that_tokenizes_and_draws_the_noise_changes_nothing_written(tmp_path,
                                                                             monkeypatch):
    # Chunks of 64 pairs, the noise drawn 32 pairs at a time: many of each, several still in
    # the worker at once (prepare_tokens.AHEAD), repeats among them.
    monkeypatch.setattr(prepare_corpus_module, "CHUNK", 64)
    monkeypatch.setattr(prepare_corpus_module, "NOISE_CHUNK", 32)
    data = write_tsv(tmp_path / "pairs.tsv", numbered_pairs(900) + numbered_pairs(50))
    c = config(noise_copies=2)
    c.data.val_fraction = 0.1
    written = {}
    for workers in (0, 1):
        out = tmp_path / f"workers-{workers}"
        prepare_corpus([data], out, c, shard_size=500, log=lambda _: None, workers=workers)
        written[workers] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert written[0] == written[1]  # every file, byte for byte
    manifest = read_manifest(tmp_path / "workers-1", verify=True).raw
    assert manifest["duplicates"] == 50 and manifest["noisy"] == 2 * manifest["pairs"]["train"]


def test_tokens_past_the_numbering_cap_are_read_as_unknown(tmp_path, monkeypatch):
    # The numbering holds MAX_TOKEN_TYPES distinct tokens (here 12); a new token after them
    # gets the overflow's number, which the remap reads as <UNK>, and the manifest counts it.
    monkeypatch.setattr(prepare_tokens, "MAX_TOKEN_TYPES", 12)
    pairs = [("a b c", "d e f"), ("a g h", "i j k"), ("l m n", "o p q"), ("a b", "c d")]
    out = tmp_path / "out"
    raw = prepare_corpus([write_tsv(tmp_path / "p.tsv", pairs)], out, config(noise_copies=0),
                         workers=0, log=lambda _: None)
    assert raw["token_types"] == 12 and raw["token_overflow"] == 5  # m n o p q
    manifest = read_manifest(out)
    remap, vocab = read_remap(manifest), Vocabulary.load(out / "vocab.json")
    assert len(remap) == 13 and remap[12] == vocab.unk_id
    read = [[vocab.tokens[remap[n]] for n in (*prompt, *reply)]
            for _, prompt, reply in shard_records(out / "train-00000.tfrecord")]
    assert read == [list("abcdef"), list("aghijk"), ["l", *["<UNK>"] * 5], list("abcd")]


def test_a_killed_prepare_is_never_used_and_a_rerun_starts_over(tmp_path, monkeypatch):
    data = write_tsv(tmp_path / "pairs.tsv", numbered_pairs(200))
    out = tmp_path / "out"
    real_close, closed = shards_module.ShardWriter.close, []

    def close_then_die(self):
        real_close(self)
        closed.append(1)
        if len(closed) == 2:
            raise KeyboardInterrupt  # killed between two shards

    monkeypatch.setattr(shards_module.ShardWriter, "close", close_then_die)
    with pytest.raises(KeyboardInterrupt):
        prepare_corpus([data], out, config(), shard_size=40, log=lambda _: None)
    assert any(out.glob("*.tfrecord")) and not (out / MANIFEST).exists()
    with pytest.raises(ChatbotError, match="no manifest.json; prepare it"):
        read_manifest(out)
    monkeypatch.setattr(shards_module.ShardWriter, "close", real_close)
    said = []
    prepare_corpus([data], out, config(), shard_size=40, log=said.append)
    assert "removing what an unfinished prepare left" in said[0]
    assert read_manifest(out, verify=True).examples("train") == 400  # 200 and their copies
    with pytest.raises(ChatbotError, match="already prepared; pass --overwrite"):
        prepare_corpus([data], out, config(), log=said.append)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(ChatbotError, match="did not write"):
        prepare_corpus([data], tmp_path / "mine", config(), log=said.append)


def test_data_prepare_command_reports_and_refuses_cleanly(tmp_path):
    data = write_tsv(tmp_path / "pairs.tsv", numbered_pairs(50))
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "chatbot.cli", "data", "prepare", *map(str, args)],
        capture_output=True, text=True, timeout=120)
    # docs: chatbot data prepare pairs.tsv.gz chats.jsonl.gz --out data/big
    done = run(data, "--out", tmp_path / "out", "--val-fraction", "0")
    assert done.returncode == 0, done.stderr
    assert "50 training pairs" in done.stdout and "chatbot train --data" in done.stdout
    missing = run(tmp_path / "absent.tsv", "--out", tmp_path / "other")
    assert missing.returncode == 1 and "absent.tsv: no such file" in missing.stderr
    assert "Traceback" not in missing.stderr


# --- batches streamed from the shards ----------------------------------------------------------


def rows(batches) -> list[tuple]:
    """Every row of the batches without its padding: (inputs..., target) as tuples."""
    out = []
    for inputs, target in batches:
        inputs = inputs if isinstance(inputs, tuple) else (inputs,)
        for r in range(target.shape[0]):
            out.append(tuple(tuple(int(t) for t in np.trim_zeros(np.asarray(x[r]), "b"))
                             for x in (*inputs, target)))
    return out


def shard_batches(prepared_dir, arch="lstm", **options):
    from chatbot.training.stream_batches import ShardBatches

    manifest = read_manifest(prepared_dir)
    vocab = Vocabulary.load(prepared_dir / "vocab.json")
    return ShardBatches(manifest, options.pop("split", "train"), vocab,
                        arch_module(arch).encode_example, batch_size=8, seed=1, **options)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_streamed_examples_are_the_architectures_own(prepared, arch):
    batches = shard_batches(prepared, arch, split="validation")
    manifest, vocab = batches.manifest, batches.vocab
    remap = read_remap(manifest)
    encode = arch_module(arch).encode_example
    want = []
    for path in manifest.shards("validation"):
        data = path.read_bytes()
        while data:
            length = int.from_bytes(data[:8], "little")
            _, prompt, reply = decode_record(data[12: 12 + length])
            inputs, target = encode(remap[prompt].tolist(), remap[reply].tolist(), vocab)
            want.append((*map(tuple, inputs), tuple(np.trim_zeros(np.asarray(target), "b"))))
            data = data[16 + length:]
    # an input's own trailing zeros are padding too: compare rows as the batches hold them
    want = [tuple(tuple(np.trim_zeros(np.asarray(x), "b").tolist()) for x in row) for row in want]
    assert sorted(rows(batches.dataset(repeat=False))) == sorted(want)


def test_a_resumed_stream_goes_on_where_the_run_was(prepared):
    whole = shard_batches(prepared, noise_copies=1).dataset()
    steps = shard_batches(prepared, noise_copies=1).steps()
    first_three = [b for _, b in zip(range(3 * steps), whole)]
    resumed = shard_batches(prepared, noise_copies=1, epoch=2).dataset()
    third = [b for _, b in zip(range(steps), resumed)]
    assert rows(third) == rows(first_three[2 * steps:])
    assert rows(first_three[:steps]) != rows(third)  # and epochs do differ


def test_each_pass_sees_the_originals_and_the_next_noisy_copy(prepared):
    batches = shard_batches(prepared, noise_copies=1)
    assert batches.rows_per_epoch == 2 * batches.manifest.pairs["train"]
    import tensorflow as tf

    table = tf.constant(read_remap(batches.manifest))
    for p, wanted in ((0, 1), (1, 2), (2, 1)):
        taken = [c for c in (0, 1, 2) if batches._seen(tf, tf.constant(c), tf.constant(
            p, tf.int64)).numpy()]
        assert taken == [0, wanted]
    assert table.shape[0] > 0


def test_two_workers_measure_every_validation_pair_once_in_as_many_batches(prepared):
    one = shard_batches(prepared, split="validation")
    sizes = [s["examples"] for s in one.manifest.raw["shards"] if s["split"] == "validation"]
    assert len(sizes) == 2 and sizes[0] > 2 * sizes[1]  # shares by shard would be uneven
    everything = scored(one.dataset(repeat=False))
    assert len(everything) == one.manifest.pairs["validation"]
    shares = [list(one.dataset(shard=k, shards=2, repeat=False)) for k in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == one.steps(2)  # one step: a batch of each
    assert sorted(scored(shares[0]) + scored(shares[1])) == sorted(everything)
    again = one.dataset(shard=1, shards=2, repeat=True).take(2 * one.steps(2))
    assert scored(again) == 2 * scored(shares[1])  # each epoch the same share, once


def scored(batches) -> list[tuple]:
    """The rows of `batches` with something to score (padding batches have none)."""
    return [row for row in rows(batches) if row[-1]]


# --- a run trained on prepared data -------------------------------------------------------------


@pytest.mark.slow
def test_a_run_trained_on_prepared_data_answers_its_pairs(tmp_path):
    from chatbot.decoding.bot import Bot
    from chatbot.decoding.quality import AnswerRates
    from chatbot.training.train import train
    from tests.conftest import learned_config

    c = learned_config("lstm", 1e-2)
    c.train.noise_copies = 0
    prepare_corpus([write_tsv(tmp_path / "pairs.tsv")], tmp_path / "prepared", c,
                   log=lambda _: None)
    said = []
    # docs: chatbot train --data data/big --out models/big
    train(tmp_path / "prepared", tmp_path / "run", c, log=said.append, verbose=0,
          callbacks=[AnswerRates.of])
    assert any("streamed from 1 training shards" in line for line in said)
    # docs: chatbot chat --model models/big
    bot = Bot.load(tmp_path / "run")
    bot.configure(retrieval=False, fallback=False)  # the model alone
    for prompt, reply in TINY_PAIRS:
        assert bot.reply(prompt).tokens == bot.tokenizer.tokenize(reply), prompt
    # docs: chatbot eval --model models/big --data data/big
    from chatbot.cli import main

    assert main(["eval", "--model", str(tmp_path / "run"), "--data",
                 str(tmp_path / "prepared")]) == 0
    evaluated = json.loads((tmp_path / "run" / "metrics.json").read_text())["eval"]
    rate = evaluated[str(tmp_path / "prepared")]["answer_rate"]  # the run's own data
    assert rate["answer_rate"] == 1.0 and rate["prompts"] == len(TINY_PAIRS)


def test_training_on_an_unfinished_directory_says_how_to_finish_it(tmp_path):
    from chatbot.training.train import train

    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "train-00000.tfrecord").write_bytes(b"")
    with pytest.raises(ChatbotError, match="no manifest.json; prepare it with `chatbot data "
                                           "prepare FILE... --out"):
        train(tmp_path / "half", tmp_path / "run", config(), log=lambda _: None)
    assert not (tmp_path / "run").exists()
