"""Samplers, pinned with fake engines: no trained model needed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chatbot.decoding.samplers import (
    SAMPLERS,
    BeamSampler,
    Candidate,
    GreedySampler,
    RandomSampler,
    TopKSampler,
    TopPSampler,
    get_sampler,
    select_state,
)
from chatbot.errors import ChatbotError
from chatbot.models.base import Engine
from chatbot.text.vocab import SPECIALS, Vocabulary
from tests.helpers import EOS, VOCAB, A, B, C, D, MarkovEngine, ScriptedEngine

BIG = Vocabulary(list(SPECIALS) + [f"w{i}" for i in range(10)])  # w0=5 .. w9=14
NEVER = [VOCAB.pad_id, VOCAB.sos_id, VOCAB.sep_id, VOCAB.unk_id]


class TableEngine(Engine):
    """Random but fixed logits indexed by (step, token before last, last token).

    The state carries the token before last, so a beam that mixes up rows picks wrong logits.
    """

    def __init__(self, vocab: Vocabulary, seed: int = 0, scale: float = 2.0, steps: int = 7,
                 eos_bias: float = 0.0):
        size = len(vocab)
        self.table = np.random.default_rng(seed).normal(size=(steps, size, size, size)) * scale
        self.table[..., vocab.eos_id] += eos_bias  # > 0: replies end sooner

    def _logits(self, t, prev, last):
        return self.table[t % len(self.table), prev, last]  # (batch, vocab)

    def start(self, prompts):
        prev = np.array([p[-2] if len(p) > 1 else 1 for p in prompts])
        last = np.array([p[-1] for p in prompts])
        return self._logits(0, prev, last), {"t": 0, "tokens": (prev, [last]), "note": None}

    def step(self, tokens, state):
        t = state["t"] + 1
        prev, last = state["tokens"][0], state["tokens"][1][0]
        assert len(prev) == len(last) == len(tokens)
        prev, last = last, np.asarray(tokens)
        return self._logits(t, prev, last), {"t": t, "tokens": (prev, [last]), "note": None}


def fixed_engine(vocab: Vocabulary, probs: dict[int, float]) -> MarkovEngine:
    """Every step, whatever came before: log(p) for the listed tokens, -inf for the rest."""
    row = np.full(len(vocab), -np.inf)
    for token, p in probs.items():
        row[token] = math.log(p)
    return MarkovEngine(np.tile(row, (len(vocab), 1)))


def garden_engine() -> MarkovEngine:
    """First a (0.6) or b (0.4); after a everything is a coin toss, after b <EOS> is certain."""
    m = np.full((len(VOCAB), len(VOCAB)), -30.0)
    m[VOCAB.sep_id, [A, B]] = [math.log(0.6), math.log(0.4)]
    m[A, [A, B, C, EOS]] = 0.0
    m[B, EOS] = m[C, EOS] = 10.0
    return MarkovEngine(m)


def cycle_engine() -> MarkovEngine:
    """Always prefers the pattern a b a b ...; <EOS> is the least liked real choice."""
    m = np.zeros((len(VOCAB), len(VOCAB)))
    for last in range(len(VOCAB)):
        m[last, [A, B, C]] = [3.0, 2.0, 1.0]
        m[last, B if last == A else A] = 5.0
    m[:, EOS] = -1.0
    return MarkovEngine(m)


EXTRA = {"top_k": {"k": 2}, "beam": {"width": 3}}


def make(name: str, **kwargs):
    """A sampler by name, with a small k or beam width where the strategy takes one."""
    return get_sampler(name, **EXTRA.get(name, {}), **kwargs)


def best_tokens(found: list[list[Candidate]]) -> list[list[int]]:
    return [cands[0].tokens for cands in found]


def path_logprob(engine, prompt, tokens, ended, temperature=1.0, never=NEVER) -> float:
    """The log-probability of a reply recomputed step by step, independently of the samplers."""
    logits, state = engine.start([prompt])
    total = 0.0
    for token in [*tokens, EOS] if ended else tokens:
        x = np.array(logits[0], dtype=float)
        x[never] = -np.inf
        x = x / temperature
        total += x[token] - x.max() - math.log(np.exp(x - x.max()).sum())
        logits, state = engine.step(np.array([token]), state)
    return total


def repeats_a_bigram(tokens: list[int]) -> bool:
    return len(set(zip(tokens, tokens[1:]))) < len(tokens) - 1


# -- the shared loop and constraints ---------------------------------------------------------


def test_greedy_follows_the_favourite_until_eos():
    engine = ScriptedEngine([[5, 6, 2], [7, 2]])
    found = GreedySampler()(engine, [[5], [6]], VOCAB)
    assert best_tokens(found) == [[5, 6], [7]]
    assert all(len(cands) == 1 for cands in found)
    assert engine.fed == [[5, 7], [6]]  # a finished row is not fed again


def test_greedy_stops_at_max_len():
    engine = ScriptedEngine([[5]])  # never says <EOS>
    assert best_tokens(GreedySampler(max_len=4)(engine, [[5]], VOCAB)) == [[5, 5, 5, 5]]


@pytest.mark.parametrize("special", ["<UNK>", "<PAD>", "<SOS>", "<SEP>"])
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_special_tokens_are_never_emitted(special, name):
    banned = VOCAB.index[special]
    engine = ScriptedEngine([[banned, 2]], runner_up=6)
    found = get_sampler(name, max_len=5, seed=0)(engine, [[5]], VOCAB)
    assert banned not in found[0][0].tokens
    if name in ("greedy", "beam"):
        assert found[0][0].tokens[0] == 6


def test_unk_allowed_when_asked():
    engine = ScriptedEngine([[VOCAB.unk_id, 2]])
    found = GreedySampler(allow_unk=True)(engine, [[5]], VOCAB)
    assert best_tokens(found) == [[VOCAB.unk_id]]


@pytest.mark.parametrize("name", ["greedy", "beam"])
def test_min_len_holds_back_eos(name):
    engine = ScriptedEngine([[2]], runner_up=7)
    found = make(name, min_len=2)(engine, [[5]], VOCAB)
    assert found[0][0].tokens == [7, 7]
    assert all(len(c.tokens) >= 2 for c in found[0])


def test_everything_banned_ends_the_reply_instead_of_crashing():
    # n=1 bans a, b and c once each has been said; min_len bans <EOS>: nothing is left.
    found = GreedySampler(no_repeat_ngram=1, min_len=5)(cycle_engine(), [[B]], VOCAB)
    assert found[0][0].tokens == [A, B, C]


def test_log_probs_are_the_log_softmax_of_the_constrained_logits_bit_for_bit():
    # log_probs takes the max before dividing by the temperature (x / t has its max at
    # max(x) / t) and mends a row where everything is banned: the same floats as the plain
    # formula, computed here on its own.
    from chatbot.models.kernels import log_softmax

    logits = np.random.default_rng(0).normal(size=(3, len(VOCAB))).astype(np.float32) * 4
    replies = [[A, B, C], [], [C]]
    for temperature in (1.0, 0.7, 3.0):
        sampler = GreedySampler(min_len=4, no_repeat_ngram=1, temperature=temperature)
        expected = np.array(logits, dtype=np.float64)
        expected[:, NEVER] = expected[:, EOS] = -np.inf  # every reply is shorter than min_len
        expected[0, [A, B, C]] = expected[2, C] = -np.inf  # already said
        expected[0, EOS] = 0.0  # row 0 has nothing left: it may only end
        got = sampler.log_probs(logits, replies, VOCAB)
        np.testing.assert_array_equal(got, log_softmax(expected / temperature))
        assert got[0, EOS] == 0.0 and np.isfinite(got[1]).sum() == 3


def test_logprob_is_the_sum_along_the_path_under_temperature():
    engine = TableEngine(BIG, seed=3)
    for temperature in (1.0, 0.5, 2.0):
        found = GreedySampler(max_len=6, temperature=temperature)(engine, [[5, 6]], BIG)
        best = found[0][0]
        ended = len(best.tokens) < 6
        expected = path_logprob(engine, [5, 6], best.tokens, ended, temperature)
        assert best.logprob == pytest.approx(expected)
        assert best.score == best.logprob


@pytest.mark.parametrize(
    "cls, kwargs, name",
    [
        (GreedySampler, {"max_len": 0}, "max_len"),
        (GreedySampler, {"max_len": 2.5}, "max_len"),
        (GreedySampler, {"max_len": 3, "min_len": 4}, "min_len"),
        (GreedySampler, {"min_len": -1}, "min_len"),
        (GreedySampler, {"allow_unk": "yes"}, "allow_unk"),
        (GreedySampler, {"no_repeat_ngram": -1}, "no_repeat_ngram"),
        (GreedySampler, {"temperature": 0}, "temperature"),
        (GreedySampler, {"temperature": -1.0}, "temperature"),
        (RandomSampler, {"temperature": float("nan")}, "temperature"),
        (RandomSampler, {"seed": -1}, "seed"),
        (RandomSampler, {"seed": "abc"}, "seed"),
        (TopKSampler, {"k": 0}, "k"),
        (TopPSampler, {"p": 0}, "p"),
        (TopPSampler, {"p": 1.5}, "p"),
        (TopPSampler, {"k": 0}, "k"),
        (BeamSampler, {"width": 0}, "width"),
        (BeamSampler, {"length_penalty": float("inf")}, "length_penalty"),
    ],
)
def test_bad_settings_are_rejected_with_a_message(cls, kwargs, name):
    with pytest.raises(ChatbotError, match=rf"`{name}` must be .*Received: {name}="):
        cls(**kwargs)


def test_bad_nbest_and_names_are_rejected():
    with pytest.raises(ChatbotError, match="nbest.*beam width"):
        BeamSampler(width=2)(garden_engine(), [[VOCAB.sep_id]], VOCAB, nbest=3)
    with pytest.raises(ChatbotError, match="nbest"):
        GreedySampler()(garden_engine(), [[VOCAB.sep_id]], VOCAB, nbest=0)
    with pytest.raises(ChatbotError, match="greedy, random, top_k, top_p, beam"):
        get_sampler("nonsense")


def test_registry_builds_every_strategy():
    assert isinstance(get_sampler("top_k", k=3), TopKSampler)
    assert isinstance(get_sampler("top_p", p=0.5, k=4), TopPSampler)
    assert isinstance(get_sampler("beam", width=2, length_penalty=0.5), BeamSampler)
    found = get_sampler("random", seed=1)(garden_engine(), [[VOCAB.sep_id]], VOCAB, nbest=3)
    assert len(found[0]) == 1  # only beam search returns more than one candidate


def test_select_state_indexes_array_leaves_of_any_nest():
    h = np.arange(6).reshape(3, 2)
    state = {"layers": [(h, h * 10)], "extra": (np.array([7, 8, 9]), 4, None), "t": 2}
    rows = np.array([2, 0, 0])
    got = select_state(state, rows)
    assert isinstance(got["layers"], list) and isinstance(got["layers"][0], tuple)
    np.testing.assert_array_equal(got["layers"][0][0], [[4, 5], [0, 1], [0, 1]])
    np.testing.assert_array_equal(got["layers"][0][1], [[40, 50], [0, 10], [0, 10]])
    np.testing.assert_array_equal(got["extra"][0], [9, 7, 7])
    assert got["extra"][1:] == (4, None) and got["t"] == 2


# -- beam search ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_beam_of_width_one_is_greedy(seed):
    engine = TableEngine(BIG, seed=seed)
    prompts = [[5, 6], [7], [9, 12, 14]]
    greedy = GreedySampler(max_len=8)(engine, prompts, BIG)
    beam = BeamSampler(width=1, length_penalty=0.0, max_len=8)(engine, prompts, BIG)
    assert best_tokens(beam) == best_tokens(greedy)
    for g, b in zip(greedy, beam):
        assert b[0].logprob == pytest.approx(g[0].logprob)


def test_beam_escapes_the_garden_path():
    prompt = [[VOCAB.sep_id]]
    greedy = GreedySampler()(garden_engine(), prompt, VOCAB)[0][0]
    beam = BeamSampler(width=3)(garden_engine(), prompt, VOCAB)[0][0]
    assert greedy.tokens[0] == A
    assert beam.tokens == [B]
    assert beam.logprob > greedy.logprob + 0.5


def test_beam_stops_once_nothing_can_beat_the_finished():
    engine = garden_engine()
    found = BeamSampler(width=2, length_penalty=0.0, max_len=40)(engine, [[VOCAB.sep_id]], VOCAB)
    assert found[0][0].tokens == [B]
    assert engine.steps <= 3


def test_nbest_returns_distinct_candidates_sorted_by_score():
    engine = TableEngine(BIG, seed=7, eos_bias=1.0)
    best = {}
    for length_penalty in (0.0, 1.0, 2.0):
        sampler = BeamSampler(width=4, length_penalty=length_penalty, max_len=6)
        cands = sampler(engine, [[5, 6]], BIG, nbest=3)[0]
        assert len(cands) == 3
        assert len({tuple(c.tokens) for c in cands}) == 3
        assert [c.score for c in cands] == sorted((c.score for c in cands), reverse=True)
        for c in cands:
            ended = len(c.tokens) < 6
            assert c.score == pytest.approx(c.logprob / (len(c.tokens) + ended) ** length_penalty)
        best[length_penalty] = cands[0]
    # A stronger length penalty trades logprob for length.
    assert len(best[2.0].tokens) > len(best[0.0].tokens)
    assert best[2.0].logprob < best[0.0].logprob


def test_beam_logprob_is_the_sum_of_log_softmax_along_the_path():
    lengths = set()
    for seed, eos_bias in [(0, 0.0), (1, 0.0), (0, 1.0), (2, 1.0)]:
        engine = TableEngine(BIG, seed=seed, scale=1.0, eos_bias=eos_bias)
        cands = BeamSampler(width=5, max_len=5)(engine, [[8, 9]], BIG, nbest=5)[0]
        assert len(cands) == 5
        for c in cands:
            expected = path_logprob(engine, [8, 9], c.tokens, ended=len(c.tokens) < 5)
            assert c.logprob == pytest.approx(expected)
            lengths.add(len(c.tokens))
    assert {0, 5} < lengths  # replies that ended at once, cut at max_len, and in between


@pytest.mark.parametrize("name", ["greedy", "beam"])
def test_batched_decoding_equals_one_prompt_at_a_time(name):
    engine = TableEngine(BIG, seed=11)
    prompts = [[5, 6], [7], [9, 12, 14], [5, 6]]
    sampler = make(name, max_len=7)
    together = sampler(engine, prompts, BIG, nbest=1)
    alone = [sampler(engine, [p], BIG)[0] for p in prompts]
    assert [[c.tokens for c in cands] for cands in together] == \
        [[c.tokens for c in cands] for cands in alone]
    assert len({tuple(t) for t in best_tokens(together)}) > 1  # the prompts lead apart


# -- sampling ---------------------------------------------------------------------------------

PROBS = {A: 0.5, B: 0.3, C: 0.15, D: 0.05}
FOUR = Vocabulary(list(SPECIALS) + ["a", "b", "c", "d"])


def first_tokens(sampler, engine, vocab, draws: int = 2000) -> list[int]:
    found = sampler(engine, [[A]] * draws, vocab)
    return [cands[0].tokens[0] for cands in found]


def test_top_k_never_leaves_the_k_best():
    probs = {5 + i: p for i, p in enumerate([0.2, 0.18, 0.15, 0.12, 0.1, 0.09, 0.08, 0.08])}
    engine = fixed_engine(BIG, probs)
    seen = set()
    for seed in range(20):
        seen |= set(first_tokens(TopKSampler(k=3, max_len=1, seed=seed), engine, BIG, 30))
    assert seen == {5, 6, 7}


@pytest.mark.parametrize(
    "p, k, allowed",
    [(0.75, None, {A, B}), (0.8, None, {A, B}), (0.81, None, {A, B, C}), (1.0, None, {A, B, C, D}),
     (0.3, None, {A}), (0.95, 2, {A, B})],
)
def test_top_p_keeps_the_smallest_set_that_reaches_p(p, k, allowed):
    sampler = TopPSampler(p=p, k=k, max_len=1, seed=0)
    assert set(first_tokens(sampler, fixed_engine(FOUR, PROBS), FOUR)) == allowed


def test_random_sampler_follows_the_probabilities():
    draws = first_tokens(RandomSampler(max_len=1, seed=0), fixed_engine(FOUR, PROBS), FOUR, 8000)
    for token, p in PROBS.items():
        assert draws.count(token) / len(draws) == pytest.approx(p, abs=0.02)


def test_the_seed_fixes_the_sample():
    engine = TableEngine(BIG, seed=5, scale=0.5)
    prompts = [[5, 6]] * 10

    def run(seed):
        return best_tokens(RandomSampler(max_len=6, seed=seed)(engine, prompts, BIG))

    assert run(1) == run(1)
    assert run(1) != run(2)
    assert run(None) != run(None)


@pytest.mark.parametrize("name", ["random", "top_k", "top_p"])
def test_a_seeded_row_gets_what_its_own_seed_gives_alone(name):
    # Row i of a seeded batch draws from seed + i: a request's n choices decode as one batch.
    engine = TableEngine(BIG, seed=5, scale=0.5)
    prompts = [[5, 6], [7], [5, 6], [8, 9]]
    batch = best_tokens(get_sampler(name, max_len=6, seed=40)(engine, prompts, BIG))
    alone = [best_tokens(get_sampler(name, max_len=6, seed=40 + i)(engine, [p], BIG))[0]
             for i, p in enumerate(prompts)]
    assert batch == alone
    assert batch[0] != batch[2]  # the same prompt, another seed


def test_top_k_of_the_whole_vocabulary_is_plain_sampling():
    engine = TableEngine(BIG, seed=5, scale=0.5)
    prompts = [[5, 6]] * 6
    whole = TopKSampler(k=len(BIG.tokens) + 100, max_len=6, seed=3)(engine, prompts, BIG)
    plain = RandomSampler(max_len=6, seed=3)(engine, prompts, BIG)
    assert best_tokens(whole) == best_tokens(plain)


# -- no repeated n-grams ----------------------------------------------------------------------


def test_the_cycle_engine_repeats_bigrams_unless_told_not_to():
    found = GreedySampler(max_len=8)(cycle_engine(), [[B]], VOCAB)
    assert found[0][0].tokens == [A, B] * 4


@pytest.mark.parametrize("name", ["greedy", "top_k", "beam"])
def test_no_repeat_bigram(name):
    for seed in range(10):
        sampler = make(name, no_repeat_ngram=2, max_len=12, seed=seed)
        for cand in sampler(cycle_engine(), [[B]], VOCAB, nbest=3 if name == "beam" else 1)[0]:
            assert len(cand.tokens) >= 4
            assert not repeats_a_bigram(cand.tokens), cand.tokens


@pytest.mark.parametrize("name", ["greedy", "top_k", "beam"])
def test_no_repeat_unigram(name):
    sampler = make(name, no_repeat_ngram=1, max_len=12, seed=0)
    for cand in sampler(cycle_engine(), [[B]], VOCAB, nbest=3 if name == "beam" else 1)[0]:
        assert len(set(cand.tokens)) == len(cand.tokens), cand.tokens


# -- the loop guard ---------------------------------------------------------------------------


def trigram_counts(tokens: list[int]) -> list[int]:
    grams = [tuple(tokens[i: i + 3]) for i in range(len(tokens) - 2)]
    return [grams.count(g) for g in set(grams)]


@pytest.mark.parametrize("name", ["greedy", "top_k", "beam"])
@pytest.mark.parametrize("limit", [1, 2, 3])
def test_loop_guard_lets_a_trigram_come_back_only_so_often(name, limit):
    sampler = make(name, loop_guard=limit, max_len=20, seed=0)
    for cand in sampler(cycle_engine(), [[B]], VOCAB, nbest=3 if name == "beam" else 1)[0]:
        assert max(trigram_counts(cand.tokens)) <= limit, cand.tokens
    unguarded = make(name, loop_guard=0, max_len=20, seed=0)(cycle_engine(), [[B]], VOCAB)
    assert max(trigram_counts(unguarded[0][0].tokens)) > 3  # the engine does loop


def test_loop_guard_allows_what_no_repeat_ngram_forbids():
    # One repeated bigram is fine for the guard (it counts trigrams, and lets them recur).
    found = GreedySampler(loop_guard=2, max_len=5)(cycle_engine(), [[B]], VOCAB)
    assert found[0][0].tokens == [A, B, A, B, A]
    with pytest.raises(ChatbotError, match="loop_guard"):
        GreedySampler(loop_guard=-1)


def test_greedy_writes_exactly_the_drafts_its_search_writes():
    """GreedySampler.writes(draft), the check of speculative decoding, is true when, and
    (but for one corner) only when, a greedy search over a model whose favourite follows
    draft + <EOS> writes the draft: over random drafts (special tokens and repeats included)
    and random settings."""
    rng = np.random.default_rng(0)
    answers = {True: 0, False: 0}
    for _ in range(600):
        draft = [int(t) for t in rng.choice([A, B, C, VOCAB.unk_id, VOCAB.sep_id],
                                            size=int(rng.integers(0, 8)),
                                            p=[0.3, 0.3, 0.3, 0.05, 0.05])]
        max_len = int(rng.integers(1, 9))
        sampler = GreedySampler(max_len=max_len, min_len=int(rng.integers(0, max_len + 1)),
                                no_repeat_ngram=int(rng.integers(0, 3)),
                                loop_guard=int(rng.integers(0, 3)),
                                allow_unk=bool(rng.integers(0, 2)))
        [[found]] = sampler(ScriptedEngine([[*draft, EOS]]), [[A]], VOCAB)
        written, writes = found.tokens == draft, sampler.writes(draft, VOCAB)
        # The one miss allowed, on the safe side: a draft shorter than min_len that the
        # search ends anyway, because every other token was banned too (a tiny vocabulary).
        assert writes == written or (written and len(draft) < sampler.min_len), \
            (draft, vars(sampler))
        answers[writes] += 1
    assert min(answers.values()) > 100  # both answers were checked many times


# === the step hook that serving streams through ================================================
# The samplers' step hook (`on_step`), which `chatbot serve` streams tokens through.

def test_on_step_sees_every_token_as_it_comes_and_changes_nothing():
    script = [[A, B, EOS], [C, EOS]]  # row 1 ends a step before row 0
    seen: list[tuple[list[int], list[int]]] = []
    found = GreedySampler(max_len=5)(
        ScriptedEngine(script), [[A], [B]], VOCAB,
        on_step=lambda rows, tokens: seen.append((rows.tolist(), tokens.tolist())))
    assert seen == [([0, 1], [A, C]), ([0, 1], [B, EOS]), ([0], [EOS])]  # finished rows leave
    assert [c[0].tokens for c in found] == [[A, B], [C]]
    assert found == GreedySampler(max_len=5)(ScriptedEngine(script), [[A], [B]], VOCAB)


def test_a_row_that_ended_leaves_the_batch():
    engine = ScriptedEngine([[A, B, C, EOS], [C, EOS], [B, A, EOS]])
    found = GreedySampler(max_len=6)(engine, [[A], [B], [C]], VOCAB)
    assert [c[0].tokens for c in found] == [[A, B, C], [C], [B, A]]
    # Row 1 ended at the second step, row 2 at the third: later steps compute only the rows
    # still writing, in their order, each fed its own token.
    assert engine.fed == [[A, C, B], [B, A], [C]]
    # Fewer than a quarter ended (1 of 5): that row stays, fed <EOS>, until more have.
    engine = ScriptedEngine([[A, EOS], [B, B, EOS], [C, C, C, EOS], [A, A, A, EOS], [B] * 4])
    found = GreedySampler(max_len=4)(engine, [[A]] * 5, VOCAB)
    assert [c[0].tokens for c in found] == [[A], [B, B], [C, C, C], [A, A, A], [B] * 4]
    assert engine.fed == [[A, B, C, A, B], [EOS, B, C, A, B], [C, A, B]]


def test_sampled_tokens_stream_as_the_search_returns_them():
    matrix = np.random.default_rng(0).normal(size=(len(VOCAB), len(VOCAB)))
    streamed: dict[int, list[int]] = {0: [], 1: []}

    def hook(rows, tokens):
        for row, token in zip(rows, tokens):
            if token != EOS:
                streamed[int(row)].append(int(token))

    sampler = RandomSampler(max_len=8, seed=3)
    found = sampler(MarkovEngine(matrix), [[A], [B]], VOCAB, on_step=hook)
    assert [c[0].tokens for c in found] == [streamed[0], streamed[1]]
    assert found == sampler(MarkovEngine(matrix), [[A], [B]], VOCAB)  # the hook draws nothing


def test_a_hook_that_raises_stops_the_search():
    engine = ScriptedEngine([[A, A, A, A, A]])

    class Gone(Exception):
        pass

    def hook(rows, tokens):
        raise Gone

    with pytest.raises(Gone):
        GreedySampler(max_len=5)(engine, [[A]], VOCAB, on_step=hook)
    assert engine.fed == []  # stopped after the first step, before feeding it back


def test_beam_search_refuses_a_hook():
    with pytest.raises(ValueError, match="cannot stream"):
        BeamSampler(width=2)(ScriptedEngine([[A, EOS]]), [[A]], VOCAB,
                             on_step=lambda rows, tokens: None)
