"""Data preparation counts every change it makes to the data: bad lines, duplicates, truncated
sides and <UNK> tokens, in the training and the validation pairs."""

from __future__ import annotations

import pytest

from chatbot.config import RunConfig
from chatbot.text.subword import SubwordTokenizer
from chatbot.text.vocab import SPECIALS, Vocabulary
from chatbot.text.words import Tokenizer
from chatbot.training.batches import Rotation
from chatbot.training.prepare import Split, prepare_data

ROWS = [
    "a a a b\tc c",
    "a b\tc",
    "a b c d e f\tc",  # the prompt is cut to "a b c d" with max_len 4
    "a b\tc",  # a duplicate: dropped
    "no tab",  # a bad line: skipped
]


@pytest.fixture
def tsv(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(ROWS) + "\n", encoding="utf-8")
    return path


def config(val_fraction: float = 0.0) -> RunConfig:
    config = RunConfig()
    config.data.max_len, config.data.min_count = 4, 2
    config.data.val_fraction, config.data.on_bad_lines = val_fraction, "skip"
    config.train.noise_copies = 0  # see the last test
    return config


def test_counts_of_a_vocabulary_built_from_the_training_pairs(tsv):
    prepared = prepare_data(config(), tsv)
    report = prepared.report
    # Counts before truncation: a 5, b 3, c 5, d e f once each; min_count 2 keeps a, b, c.
    assert prepared.vocab.tokens == [*SPECIALS, "a", "c", "b"]
    assert (report.duplicates, [line for line, _ in report.bad_lines]) == (1, [5])
    # Read after truncation: 6 + 3 + (4 + 1) tokens; "d" is the one <UNK> (e, f were cut).
    assert report.train == Split(pairs=3, truncated=1, tokens=14, unknown=1)
    assert report.validation == Split(pairs=0, truncated=0, tokens=0, unknown=0)
    assert report.lines() == [
        f"skipped 1 bad lines of {tsv} (first: line 5: expected 2 tab-separated columns "
        "(prompt<TAB>reply), found 1)",
        f"dropped 1 duplicate pairs of {tsv} (exact repeats of an earlier prompt and reply)",
        "3 training pairs, 0 validation pairs, vocabulary 8 tokens",
        "truncated to 4 tokens: 1 of 6 training sides (16.7%)",
        "read as <UNK>: 1 of 14 training tokens (7.1%), not in the vocabulary built from the "
        "training pairs (min_count 2, max_vocab 20000)",
    ]
    assert len(prepared.train_examples) == 3 and prepared.val_examples == []


def test_validation_counts_against_a_given_vocabulary(tsv):
    vocab = Vocabulary([*SPECIALS, "a"])
    run = config(val_fraction=0.5)
    prepared = prepare_data(run, tsv, vocab, vocab_source="of models/old")
    assert prepared.vocab is vocab
    for pairs, split in ((prepared.train_pairs, prepared.report.train),
                         (prepared.val_pairs, prepared.report.validation)):
        tokens = [t for p in pairs for side in (p.prompt, p.reply) for t in side.split()[:4]]
        assert split.pairs == len(pairs) and split.tokens == len(tokens)
        assert split.unknown == sum(t != "a" for t in tokens)
        assert split.truncated == sum(len(p.prompt.split()) > 4 for p in pairs)
    assert prepared.report.validation.pairs == 1 and prepared.report.train.pairs == 2
    assert prepared.report.lines()[-1].endswith("validation tokens (" + format(
        prepared.report.validation.unknown / prepared.report.validation.tokens, ".1%")
        + "), not in the vocabulary of models/old")


def test_nothing_lost_reports_nothing_but_the_sizes(tmp_path):
    path = tmp_path / "clean.tsv"
    path.write_text("hi\thello\nbye\tsee you\n", encoding="utf-8")
    run = config()
    run.data.min_count = 1
    assert prepare_data(run, path).report.lines() == [
        "2 training pairs, 0 validation pairs, vocabulary 10 tokens"]  # 5 specials + 5 words


def test_noisy_copies_add_training_examples_but_no_vocabulary(tsv):
    plain = prepare_data(config(), tsv)
    noisy_config = config()
    noisy_config.train.noise_copies, noisy_config.train.noise_pool = 2, 0
    noisy = prepare_data(noisy_config, tsv)
    assert noisy.vocab.tokens == plain.vocab.tokens  # built before the noise
    assert noisy.train_pairs == plain.train_pairs  # the memory and the metrics see no noise
    assert len(noisy.train_examples) == 3 * len(plain.train_examples)
    assert noisy.train_examples[: len(plain.train_examples)] == plain.train_examples
    assert noisy.rotation == Rotation(3, 2, 2)  # a pool of 2, both seen in every epoch
    assert noisy.report.noisy == 6
    assert ("added 6 noisy copies of the training prompts (typing noise, each with its "
            "prompt's reply)") in noisy.report.lines()
    assert noisy.report.train == plain.report.train  # the counts are of the real pairs


def test_a_pool_of_noisy_copies_is_seen_a_few_at_a_time(tsv):
    run = config()
    run.train.noise_copies, run.train.noise_pool = 1, 4
    noisy = prepare_data(run, tsv)
    assert len(noisy.train_examples) == 5 * 3  # each prompt and its 4 copies
    assert noisy.rotation == Rotation(3, 4, 1)
    assert ("added 12 noisy copies of the training prompts (typing noise, each with its "
            "prompt's reply; each epoch sees 1 of every prompt's 4, the next in turn)"
            ) in noisy.report.lines()
    run.train.noise_copies = 0
    assert prepare_data(run, tsv).rotation is None  # no noise at all


def test_sentencepiece_vocabulary_is_every_piece_of_a_model_learned_from_training_pairs(tsv):
    run = config(val_fraction=0.5)
    run.text.tokenizer, run.text.subword_model = "sentencepiece", "bpe"
    prepared = prepare_data(run, tsv)
    tokenizer = prepared.tokenizer
    assert isinstance(tokenizer, SubwordTokenizer)
    # Every piece, bytes included: min_count (2 here) and max_vocab are for words only.
    assert prepared.vocab.tokens == [*SPECIALS, *tokenizer.pieces]
    learned = {t for p in prepared.train_pairs for side in (p.prompt, p.reply)
               for t in tokenizer.tokenize(side)}
    assert learned <= set(tokenizer.pieces)
    # The validation pair's "d e f" were never seen: byte pieces, not <UNK>.
    assert "<0x64>" in tokenizer.tokenize(prepared.val_pairs[0].prompt)
    assert prepared.report.train.unknown == prepared.report.validation.unknown == 0
    assert prepared.report.lines()[2] == (
        f"2 training pairs, 1 validation pairs, vocabulary {len(prepared.vocab)} tokens")


def test_a_given_vocabulary_keeps_its_tokenizer(tsv):
    run = config()
    prepared = prepare_data(run, tsv, Vocabulary([*SPECIALS, "a"]), "of models/old")
    assert prepared.tokenizer == Tokenizer(lowercase=True)
    run.text.tokenizer = "sentencepiece"
    with pytest.raises(ValueError, match="needs the tokenizer it was made with"):
        prepare_data(run, tsv, Vocabulary([*SPECIALS, "a"]), "of models/old")
