"""chatbot.embeddings: nearest neighbours and the map of a model's token embedding; the
`chatbot embeddings` command and the REPL's /neighbours.

The ranking, the projection and the drawing are checked on embeddings made by hand (no model);
reading them through the architecture contract, and what a model learns, on the tiny runs.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import matplotlib.image
import numpy as np
import pytest

from chatbot import plot
from chatbot.embeddings import (
    AMONG,
    STATES,
    TABLES,
    Embeddings,
    draw_map,
    draw_words,
    map_figure,
    mean_states,
    neighbour_lines,
    neighbours,
    project,
    word_vectors,
)
from chatbot.errors import ChatbotError
from chatbot.models.base import Engine
from chatbot.text.vocab import SPECIALS, Vocabulary
from chatbot.text.words import Tokenizer
from tests.helpers import drive

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WORDS = ["?", "hello", "hi", "hey", "bye", "你", "好", "嗨", "<0xE4>"]


def made(rows: dict[str, list[float]]) -> Embeddings:
    """Embeddings of SPECIALS + WORDS, each row given or (1, 0, 0, 0) by default, scaled to
    unit length as Embeddings.load scales them."""
    vocab = Vocabulary([*SPECIALS, *WORDS])
    table = np.array([rows.get(t, [1.0, 0.0, 0.0, 0.0]) for t in vocab.tokens])
    return Embeddings(vocab, Tokenizer(), table / np.linalg.norm(table, axis=1, keepdims=True))


# hello points along x; hi is nearest, hey next, bye orthogonal, "?" opposite. The specials and
# the byte piece lie exactly on hello (the default row), and must still not be its neighbours.
ROWS = {"hello": [1, 0, 0, 0], "hi": [0.9, 0.1, 0, 0], "hey": [0.6, 0.8, 0, 0],
        "bye": [0, 1, 0, 0], "?": [-1, 0, 0, 0], "你": [0, 0, 1, 0], "好": [0, 0, 0, 1],
        "嗨": [0, 0, 1, 1], "<0xE4>": [1, 0, 0, 0]}


# --- neighbours ----------------------------------------------------------------------------


def test_neighbours_are_ranked_by_cosine_without_the_word_and_the_specials():
    found = made(ROWS).neighbours("hello", k=4)
    hi = 0.9 / np.hypot(0.9, 0.1)
    assert [token for token, _ in found] == ["<0xE4>", "hi", "hey", "bye"]  # (ties: in order)
    assert [cosine for _, cosine in found] == pytest.approx([1.0, hi, 0.6, 0.0])
    everything = made(ROWS).neighbours("hello", k=100)  # k beyond the vocabulary: all of it
    assert [t for t, _ in everything][-1] == "?" and everything[-1][1] == pytest.approx(-1)
    assert len(everything) == len(WORDS) - 1
    cosines = [c for _, c in everything]
    assert cosines == sorted(cosines, reverse=True)


def test_a_word_read_as_several_tokens_stands_for_their_mean():
    # The word tokenizer reads Chinese a character at a time: 你好 is 你 and 好, whose mean
    # points exactly at 嗨; both of its own tokens are left out.
    found = made(ROWS).neighbours("你好", k=2)
    assert found[0] == ("嗨", pytest.approx(1.0))
    assert "你" not in dict(found) and "好" not in dict(found)
    assert neighbour_lines(made(ROWS), "你好", k=1) == [
        "nearest to '你好' by cosine similarity (read as 2 tokens, 你 好: the mean of their "
        "vectors):", "   1.000  嗨"]


def test_a_word_is_read_as_the_run_reads_text():
    assert made(ROWS).neighbours("HELLO", k=1) == made(ROWS).neighbours("hello", k=1)


def test_an_unknown_word_is_refused_with_known_words_close_to_it():
    with pytest.raises(ChatbotError, match=r"'helo' is not in the model's vocabulary \(14 "
                                           r"tokens\), so it has no embedding; close known "
                                           r"words: hello"):
        made(ROWS).neighbours("helo")
    # Nothing close: the most frequent words (no specials, punctuation or byte pieces).
    with pytest.raises(ChatbotError, match="'斑', '马' are not .* they have no embedding; the "
                                           "most frequent words are: hello, hi, hey, bye, 你, "
                                           "好, 嗨$"):
        made(ROWS).neighbours("斑马")
    with pytest.raises(ChatbotError, match="holds no word to look up; give one, such as hello"):
        made(ROWS).neighbours("   ")


@pytest.mark.parametrize("k", [0, -1, True, 2.5])
def test_k_must_be_a_whole_number_of_at_least_one(k):
    with pytest.raises(ChatbotError, match=f"k must be a whole number of at least 1 .*received "
                                           f"{k!r}"):
        made(ROWS).neighbours("hello", k=k)


def test_a_sentencepiece_run_s_words_are_its_pieces():
    from chatbot.text.subword import train_subword

    tokenizer = train_subword(["hello world", "hello there", "say hello", "你好 世界"] * 20,
                              "unigram", 300, lowercase=True)
    vocab = Vocabulary([*SPECIALS, *tokenizer.pieces])
    table = np.random.default_rng(0).normal(size=(len(vocab), 4))
    embeddings = Embeddings(vocab, tokenizer, table / np.linalg.norm(table, axis=1, keepdims=True))
    # Pieces in the model's order, without its 256 byte pieces and the bare word start "▁".
    words = embeddings.frequent(1000)
    assert words[0] == "▁hello" and {"你", "好", "世", "界"} <= set(words)
    assert "▁" not in words and not any(word.startswith("<0x") for word in words)
    assert words == [piece for piece in tokenizer.pieces if piece in words]
    found = embeddings.neighbours("Hello", k=len(vocab))  # read as the one piece "▁hello"
    assert len(found) == len(vocab) - len(SPECIALS) - 1 and "▁hello" not in dict(found)
    cosine = embeddings.unit @ embeddings.unit[vocab.index["▁hello"]]
    assert found[0] == (vocab.tokens[np.argsort(-cosine)[1]], pytest.approx(np.sort(cosine)[-2]))


def test_neighbours_are_looked_for_among_the_most_frequent_tokens():
    # WORDS in vocabulary order: ?, hello, hi, hey, bye, ... With among=3 the candidates are ?,
    # hello and hi; hey, nearer to hello than "?", is not one.
    embeddings = made(ROWS)
    embeddings.among = 3
    assert [token for token, _ in embeddings.neighbours("hello", k=5)] == ["hi", "?"]
    # A word outside them still has its neighbours among them.
    assert {token for token, _ in embeddings.neighbours("bye", k=5)} == {"?", "hello", "hi"}


def test_a_word_no_known_pair_holds_has_no_vector_and_is_no_neighbour():
    # The states of "hi" and 嗨 were never read (no pair holds them): hi is not hello's nearest
    # any more, nor on the map, and asking for it says why.
    embeddings = made(ROWS)
    embeddings.seen = np.array([t not in {"hi", "嗨"} for t in embeddings.vocab.tokens])
    assert [token for token, _ in embeddings.neighbours("hello", k=3)] == ["<0xE4>", "hey", "bye"]
    assert "hi" not in embeddings.frequent(100) and "hey" in embeddings.frequent(100)
    with pytest.raises(ChatbotError, match="'hi' occurs in none of the known pairs the model's "
                                           "states are averaged over, so it has no vector; "
                                           "try a more frequent word, such as hello, hey, bye"):
        embeddings.neighbours("hi")


class Reader(Engine):
    """An engine whose state after a token is the token's id and its place: (id, place)."""

    def states(self, prompts, replies):
        return [np.array([[t, place] for place, t in enumerate([*p, *r])], float)
                for p, r in zip(prompts, replies)]


def test_a_word_s_states_are_summed_over_its_places_in_the_pairs_each_side_cut():
    vocab = Vocabulary([*SPECIALS, "hi", "there", "hello", "you"])
    hi, there, hello, you = (vocab.index[w] for w in ("hi", "there", "hello", "you"))
    pairs = [("hi there", "hello you"), ("hello", "hi hi hi")]
    sums, counts = mean_states(Reader(), vocab, Tokenizer(), pairs, max_len=2)
    # "hi hi hi" is cut to two: hi is at places 0 (pair 1) and 1, 2 (pair 2: hello, hi, hi).
    assert counts.tolist() == [0, 0, 0, 0, 0, 3, 1, 2, 1]
    assert sums[hi].tolist() == [3 * hi, 0 + 1 + 2] and sums[there].tolist() == [there, 1]
    assert sums[hello].tolist() == [2 * hello, 2 + 0] and sums[you].tolist() == [you, 3]
    assert mean_states(Engine(), vocab, Tokenizer(), pairs, 2) is None  # no states
    assert mean_states(Reader(), vocab, Tokenizer(), [], 2) is None  # no pairs


def test_a_word_s_vector_is_its_input_and_its_output_embedding_each_centred():
    """Token 0 and 1 are read alike (their input rows agree) but predicted apart; 0 and 2 are
    predicted alike and read apart: each table counts for half. A shift that every token shares,
    as trained tables do, is taken out by centring on the frequent tokens (0 to 3) only."""
    shift = np.array([5.0, 5.0])
    inputs = np.array([[1, 0], [1, 0], [-1, 0], [-1, 0], [3, 7]]) + shift
    outputs = np.array([[0, 1], [0, -1], [0, 1], [0, -1], [2, 9]]) * [1, 3] + shift
    vectors = word_vectors(inputs, outputs, np.arange(4))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0)
    cosine = vectors @ vectors[0]
    np.testing.assert_allclose(cosine[:4], [1.0, 0.0, 0.0, -1.0], atol=1e-12)
    # Uncentred, the shift would make every cosine large.
    shifted = word_vectors(inputs, outputs, np.arange(0))
    assert (shifted[:4] @ shifted[0] > 0.5).all()


# --- the map -------------------------------------------------------------------------------


def test_pca_keeps_a_plane_of_points_as_it_is():
    # Points on a tilted plane in 4-D, spread more along one direction: the projection keeps
    # every distance, and the first axis holds the larger share of the variance.
    rng = np.random.default_rng(0)
    flat = rng.normal(size=(30, 2)) * [3.0, 1.0]
    basis = np.linalg.qr(rng.normal(size=(4, 2)))[0].T  # (2, 4), orthonormal rows
    points, share = project(flat @ basis + 5.0)

    def distances(x):
        return np.linalg.norm(x[:, None] - x[None], axis=-1)

    np.testing.assert_allclose(distances(points), distances(flat), atol=1e-9)
    assert share.sum() == pytest.approx(1.0) and share[0] > 0.8


def test_the_map_labels_each_frequent_word_and_draws_chinese_in_red(tmp_path):
    embeddings = made(ROWS)
    assert embeddings.frequent(100) == ["hello", "hi", "hey", "bye", "你", "好", "嗨"]
    words = embeddings.frequent(5)
    points, share = project(embeddings.unit[embeddings.vocab.encode(words)])
    ax = map_figure(points, words, share, "title").axes[0]
    labels = ax.texts
    assert [text.get_text() for text in labels] == words
    np.testing.assert_allclose([text.xy for text in labels], points)
    assert [text.get_color() for text in labels] == ["black"] * 4 + ["C3"]
    assert ax.get_xlabel().startswith(f"principal component 1 ({share[0]:.0%}")
    out = draw_words(embeddings, tmp_path / "nested" / "map.png", 5, "made")
    assert out.read_bytes()[:8] == PNG_MAGIC and matplotlib.image.imread(out).shape[:2] == (800,
                                                                                            1000)
    assert [p.name for p in out.parent.iterdir()] == ["map.png"]  # no temporary file left


def boxes(tmp_path, name: str) -> list[str]:
    """matplotlib's warnings about glyphs it drew as boxes while drawing the made map."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        draw_words(made(ROWS), tmp_path / name, 10, "made")
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_chinese_labels_are_drawn_with_the_cjk_font(tmp_path, monkeypatch):
    if plot.cjk_font() is None:
        pytest.skip("no CJK font installed, so Chinese labels cannot be checked; install one "
                    "(Debian/Ubuntu: apt install fonts-wqy-microhei, as .ci/run does)")
    assert boxes(tmp_path, "with_font.png") == []
    # The check can fail: without the CJK font the same labels are boxes, and matplotlib says so.
    monkeypatch.setattr(plot, "cjk_font", lambda: None)
    assert len(boxes(tmp_path, "without.png")) >= 3


@pytest.mark.parametrize("top", [1, 0, "many"])
def test_a_map_needs_at_least_two_words(tmp_path, top):
    with pytest.raises(ChatbotError, match=f"top must be a whole number of at least 2 .*received "
                                           f"{top!r}"):
        draw_words(made(ROWS), tmp_path / "map.png", top, "made")
    assert not (tmp_path / "map.png").exists()


# --- trained runs: the contract and what they learned ----------------------------------------


@pytest.mark.slow
def test_every_architecture_s_word_vectors_are_read_through_the_contract(tiny_runs):
    """Read without TensorFlow, a decoder-only model's word vector (lstm, transformer) is what
    the Keras model's output layer reads after the word, averaged over the word's places in the
    run's known pairs, centred, of unit length; a word no pair holds has none. An
    encoder-decoder's is its Embedding table and output layer's kernel columns, each centred and
    of unit length, side by side. Neighbours are ranked by their cosine."""
    import keras

    import chatbot.models.common  # noqa: F401  (register the custom layers for load_model)
    import chatbot.models.layers  # noqa: F401
    from chatbot.models import ARCHS

    assert set(tiny_runs) == set(ARCHS)
    kinds = {}
    for arch, run in tiny_runs.items():
        embeddings = Embeddings.load(run)
        kinds[arch] = embeddings.kind
        model = keras.saving.load_model(run / "model.keras")
        assert len(embeddings.vocab) < AMONG  # so every token is a candidate
        if embeddings.kind == STATES:
            vectors, seen = keras_states(model, embeddings, run)
            assert seen[len(SPECIALS):].all(), arch  # the tiny memory holds every pair
            np.testing.assert_array_equal(embeddings.seen, seen, err_msg=arch)
            vectors = vectors - vectors[seen & (np.arange(len(seen)) >= len(SPECIALS))].mean(0)
            np.testing.assert_allclose(embeddings.unit[seen], unit(vectors[seen]), atol=1e-4,
                                       err_msg=arch)
            assert not embeddings.unit[~seen].any(), arch
        else:
            tables = [keras.ops.convert_to_numpy(model.get_layer("embedding").embeddings),
                      keras.ops.convert_to_numpy(model.get_layer("output_dense").kernel).T]
            vectors = np.hstack([unit(t - t[len(SPECIALS):].mean(axis=0)) for t in tables])
            np.testing.assert_allclose(embeddings.unit, unit(vectors), atol=1e-6, err_msg=arch)
        found = neighbours(run, "hello", k=5)
        assert len(found) == 5 and "hello" not in dict(found), arch
        assert not set(dict(found)) & set(SPECIALS), arch
        expected = embeddings.unit @ embeddings.unit[embeddings.vocab.index["hello"]]
        others = [i for i in range(len(SPECIALS), len(expected))
                  if i != embeddings.vocab.index["hello"]
                  and (embeddings.seen is None or embeddings.seen[i])]
        assert [c for _, c in found] == pytest.approx(sorted(expected[others])[::-1][:5]), arch
    assert kinds == {"lstm": STATES, "transformer": STATES, "seq2seq": TABLES,
                     "attention": TABLES, "gru": TABLES}


def keras_states(model, embeddings: Embeddings, run) -> tuple[np.ndarray, np.ndarray]:
    """Each token's mean input to the Keras model's output layer after it, over its places in
    the run's memory.json pairs read as `<SOS> prompt <SEP> reply`, one pair at a time; and
    which tokens have one."""
    import json

    import keras

    reads = keras.Model(model.inputs, model.get_layer("output_dense").input)
    vocab = embeddings.vocab
    sums, counts = np.zeros((len(vocab), reads.output.shape[-1])), np.zeros(len(vocab))
    for entry in json.loads((run / "memory.json").read_text(encoding="utf-8"))["entries"]:
        for reply in entry["replies"]:
            prompt, reply = (vocab.encode(embeddings.tokenizer.tokenize(text))
                             for text in (entry["prompt"], reply))
            states = keras.ops.convert_to_numpy(
                reads([np.array([[vocab.sos_id, *prompt, vocab.sep_id, *reply]])]))[0]
            for place, token in [*enumerate(prompt, 1), *enumerate(reply, len(prompt) + 2)]:
                sums[token] += states[place]
                counts[token] += 1
    return sums / np.maximum(counts, 1)[:, None], counts > 0


def unit(table: np.ndarray) -> np.ndarray:
    return table / np.linalg.norm(table, axis=1, keepdims=True)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["lstm", "seq2seq", "attention", "gru"])
def test_words_said_together_end_up_together(tiny_runs, arch):
    """What the recurrent tiny runs learned: 再 and 见, the two characters of 再见 ("goodbye"),
    which the training pairs only ever write side by side, are among each other's 3 nearest
    neighbours of 41 tokens; "name" is among the 3 nearest of "my" (of "my name is bot."), and
    "my" or "your" (of "what is your name?") among those of "name". (The tiny transformer,
    trained for the few epochs it needs to answer, shows none of it.)"""
    def nearest(word: str) -> list[str]:
        return [token for token, _ in neighbours(tiny_runs[arch], word, k=3)]

    assert "见" in nearest("再") and "再" in nearest("见")
    assert "name" in nearest("my") and {"my", "your"} & set(nearest("name"))


@pytest.mark.slow
def test_draw_map_of_a_run_writes_a_small_png(tiny_run, tmp_path):
    out = draw_map(tiny_run, tmp_path / "map.png")
    assert out == tmp_path / "map.png" and out.read_bytes()[:8] == PNG_MAGIC
    assert out.stat().st_size <= 200_000


# --- the command and the REPL ----------------------------------------------------------------


def test_the_command_has_help(capsys):
    from chatbot.cli import main

    with pytest.raises(SystemExit) as exit:
        main(["embeddings", "--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: chatbot embeddings") and "--neighbours WORD" in out
    assert f"--among N look for neighbours among the N most frequent tokens (default {AMONG}" \
        in " ".join(out.split())


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chatbot.cli", "embeddings", *args],
                          capture_output=True, timeout=300)


@pytest.mark.slow
def test_the_command_prints_neighbours_without_tensorflow(tiny_run, tmp_path):
    # docs: chatbot embeddings --model models/mine --neighbours hello
    code = ("import sys; from chatbot.cli import main\n"
            f"assert main(['embeddings', '--model', {str(tiny_run)!r}, '--neighbours', '再', "
            "'-k', '2']) == 0\n"
            "assert 'tensorflow' not in sys.modules and 'matplotlib' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "nearest to '再' by cosine similarity:"
    assert len(lines) == 3 and lines[1].endswith("  见")
    assert not list(tmp_path.iterdir())  # --neighbours without -o draws no map


@pytest.mark.slow
def test_the_command_draws_the_map(tiny_run, tmp_path):
    out = tmp_path / "map.png"
    result = run("--model", str(tiny_run), "-o", str(out), "--top", "20")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == f"wrote {out}\n" and out.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow
def test_the_command_refuses_bad_input_and_exits_1(tiny_run, tmp_path, capsys):
    from chatbot.cli import main

    # A word it lacks: named on stderr, the other words still answered, exit 1.
    model = ["--model", str(tiny_run)]
    assert main(["embeddings", *model, "--neighbours", "zebra", "--neighbours", "hello"]) == 1
    printed = capsys.readouterr()
    assert printed.err.startswith("chatbot: error: 'zebra' is not in the model's vocabulary")
    assert printed.out.startswith("nearest to 'hello'")
    bad = tmp_path / "bad.png"
    for args, message in (([*model, "--top", "1"], "--top must be a whole number of at least 2"),
                          ([*model, "-k", "0", "--neighbours", "hi"], "-k must be a whole number"),
                          (["--model", str(tmp_path / "nothing")], "no such model directory")):
        assert main(["embeddings", *args, "-o", str(bad)]) == 1, args
        assert message in capsys.readouterr().err, args
        assert not bad.exists()


@pytest.mark.slow
def test_the_repl_shows_neighbours(tiny_run):
    from chatbot.decoding.bot import Bot

    lines = drive(Bot.load(tiny_run), "/help\r/neighbours 再\r/neighbours zebra\r/neighbours\r"
                                      "/quit\r")
    assert any(line.startswith("  /neighbours WORD") for line in lines[1].splitlines())
    at = lines.index("nearest to '再' by cosine similarity:")
    assert lines[at + 1].endswith("  见") and len(lines[at + 1: at + 9]) == 8
    assert lines[at + 9].startswith("error: 'zebra' is not in the model's vocabulary")
    assert lines[at + 10] == "wrong arguments for /neighbours; /help shows its usage"


@pytest.mark.slow
def test_the_repl_says_when_a_bot_has_no_run_directory(tiny_run):
    from chatbot.decoding.bot import Bot

    bot = Bot.load(tiny_run)
    bot.run_dir = None  # as a bot built in memory
    lines = drive(bot, "/neighbours hello\r/quit\r")
    assert "this bot was not loaded from a run directory" in lines[1]
