"""Decoding strategies over a next-token engine, after keras-hub's samplers.

Samplers drive an engine (the protocol of `chatbot.models.base.Engine`): `start(prompts) ->
(logits, state)` and `step(tokens, state) -> (logits, state)`, with logits of shape (batch,
vocab). State is any nest of tuples, lists and dicts whose array leaves have the batch on axis 0;
`select_state` (from the same contract) picks rows out of it, so engines need no helper.

The base `Sampler` owns the loop, the temperature, the stopping at <EOS>, and the rules every
strategy shares: tokens that must never be emitted (<PAD>, <SOS>, <SEP>, and <UNK> unless asked
for), a minimum and maximum reply length, and no repeated n-grams. A sampling strategy overrides
one method, `next_tokens`, which picks the next token of every row from its log-probabilities;
beam search overrides `search`, the loop itself. `SAMPLERS` maps names to classes.

Every strategy returns `Candidate`s whose `logprob` is the sum of the log-probabilities of the
emitted tokens (and the final <EOS>) under the model's distribution after the constraints and
the temperature. Top-k and top-p truncation is not counted, so scores compare across strategies.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from chatbot.errors import ChatbotError
from chatbot.models.base import Engine, select_state
from chatbot.models.kernels import log_softmax
from chatbot.text.vocab import Vocabulary


@dataclass(frozen=True)
class Candidate:
    tokens: list[int]  # reply ids, without <EOS>
    logprob: float  # sum of the log-probabilities of the tokens and the final <EOS>, if emitted
    score: float  # what candidates are ranked by: logprob, or beam's length-normalized logprob


LOOP_NGRAM = 3  # the n-gram size loop_guard counts
# Called after every step of a search with the rows that emitted a token in it and those
# tokens, <EOS> included, (rows,) each: a streaming server sends them as they come. It may
# raise to stop the search (a client that went away).
StepHook = Callable[[np.ndarray, np.ndarray], None]


def _continuations(reply: Sequence[int], n: int) -> list[int]:
    """The token that followed each earlier occurrence of the reply's last n-1 tokens: the
    tokens that would complete an n-gram the reply already has (one entry per occurrence)."""
    if len(reply) < n - 1:
        return []
    prefix = list(reply[len(reply) - n + 1:])  # the last n-1 tokens; empty when n == 1
    return [reply[i + n - 1] for i in range(len(reply) - n + 1)
            if list(reply[i:i + n - 1]) == prefix]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool) and math.isfinite(value))


def _check(name: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise ChatbotError(f"`{name}` must be {expected}. Received: {name}={value!r}")


class RowGenerators:
    """One generator per row, seeded seed, seed + 1, ...: `random((rows, 1))` draws one
    number from each, as np.random.Generator.random does from one. Only what _sample uses."""

    def __init__(self, seed: int, rows: int):
        self.generators = [np.random.default_rng(seed + row) for row in range(rows)]

    def random(self, shape: tuple[int, int]) -> np.ndarray:
        if shape != (len(self.generators), 1):
            raise ValueError(f"{len(self.generators)} row generators cannot draw {shape}")
        return np.array([[g.random()] for g in self.generators])

    def rows(self, rows: np.ndarray) -> RowGenerators:
        """The same generators, of the given rows only, in that order."""
        kept = RowGenerators(0, 0)
        kept.generators = [self.generators[row] for row in rows]
        return kept


def _sample(logprobs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row from exp(logprobs), (rows, vocab) -> (rows,); -inf is never drawn."""
    cdf = np.exp(logprobs).cumsum(axis=-1)
    u = (1.0 - rng.random((len(cdf), 1))) * cdf[:, -1:]  # in (0, total]: skips zero-mass tokens
    return (cdf < u).sum(axis=-1)


# The share of ended rows at which they leave the batch: dropping rows copies the others' state
# (a Transformer's cache), so it happens a few times per search, not each time a row ends.
DROP_ENDED = 0.25


class Sampler:
    """One token per row per step, all prompts together, until every row has emitted <EOS>."""

    def __init__(self, max_len: int = 40, min_len: int = 0, allow_unk: bool = False,
                 no_repeat_ngram: int = 0, loop_guard: int = 0, temperature: float = 1.0,
                 seed: int | None = None):
        _check("max_len", max_len, _is_int(max_len) and max_len >= 1, "an integer of at least 1")
        _check("min_len", min_len, _is_int(min_len) and 0 <= min_len <= max_len,
               f"an integer between 0 and max_len={max_len}")
        _check("allow_unk", allow_unk, isinstance(allow_unk, (bool, np.bool_)), "True or False")
        _check("no_repeat_ngram", no_repeat_ngram,
               _is_int(no_repeat_ngram) and no_repeat_ngram >= 0,
               "an integer of at least 0 (0 allows repeats)")
        _check("loop_guard", loop_guard, _is_int(loop_guard) and loop_guard >= 0,
               f"an integer of at least 0 (0 switches it off; k lets a {LOOP_NGRAM}-gram occur "
               "k times)")
        _check("temperature", temperature, _is_real(temperature) and temperature > 0,
               "a number greater than 0 (1 leaves the model's distribution unchanged)")
        _check("seed", seed, seed is None or (_is_int(seed) and seed >= 0),
               "None or an integer of at least 0")
        self.max_len = max_len
        self.min_len = min_len
        self.allow_unk = allow_unk
        self.no_repeat_ngram = no_repeat_ngram
        self.loop_guard = loop_guard
        self.temperature = temperature
        self.seed = seed

    def __call__(self, engine: Engine, prompts: Sequence[Sequence[int]], vocab: Vocabulary,
                 nbest: int = 1, on_step: StepHook | None = None) -> list[list[Candidate]]:
        """Candidates for every prompt, best first, at most `nbest` each; `on_step` sees each
        step's tokens as they are generated (not with beam search, whose hypotheses change
        until the end)."""
        self.check_nbest(nbest)
        if not prompts:
            return []
        # Per call, so that the same seed gives the same replies; with a seed S, row i draws
        # from its own generator, seeded S + i: it gets what it would get alone with seed
        # S + i, so the n choices of a seeded request decode as one batch.
        rng = (np.random.default_rng() if self.seed is None
               else RowGenerators(self.seed, len(prompts)))
        return self.search(engine, prompts, vocab, nbest, rng, on_step)

    def check_nbest(self, nbest: int) -> None:
        _check("nbest", nbest, _is_int(nbest) and nbest >= 1, "an integer of at least 1")

    def search(self, engine: Engine, prompts: Sequence[Sequence[int]], vocab: Vocabulary,
               nbest: int, rng: np.random.Generator, on_step: StepHook | None = None
               ) -> list[list[Candidate]]:
        """The batched loop. Ended rows are fed <EOS>, their reply frozen, until DROP_ENDED of
        the batch has ended; then they leave it (`select_state`), and later steps compute only
        the rows still writing: a row's reply is what it would be alone, so none changes."""
        logits, state = engine.start(prompts)  # (batch, vocab)
        batch = len(prompts)
        replies: list[list[int]] = [[] for _ in range(batch)]
        logprob = np.zeros(batch)
        rows = np.arange(batch)  # the prompts the rows of logits and state belong to
        done, draw = np.zeros(batch, dtype=bool), rng  # per row of logits and state; its rng
        for t in range(self.max_len):
            logprobs = self.log_probs(logits, [replies[row] for row in rows], vocab)
            tokens = np.where(done, vocab.eos_id, self.next_tokens(logprobs, draw))
            live = np.flatnonzero(~done)
            logprob[rows[live]] += logprobs[live, tokens[live]]
            for i in live:
                if tokens[i] == vocab.eos_id:
                    done[i] = True
                else:
                    replies[rows[i]].append(int(tokens[i]))
            if on_step is not None:
                on_step(rows[live], tokens[live])
            if done.all() or t + 1 == self.max_len:
                break
            if done.sum() >= DROP_ENDED * len(rows):
                keep = np.flatnonzero(~done)
                rows, tokens, done = rows[keep], tokens[keep], done[keep]
                state = select_state(state, keep)
                draw = rng.rows(rows) if isinstance(rng, RowGenerators) else rng
            logits, state = engine.step(tokens, state)
        return [[Candidate(reply, float(lp), float(lp))] for reply, lp in zip(replies, logprob)]

    def log_probs(self, logits: np.ndarray, replies: Sequence[Sequence[int]],
                  vocab: Vocabulary) -> np.ndarray:
        """Log-softmax of the constrained, temperature-scaled logits: (rows, vocab).

        `replies` holds each row's reply so far, for min_len and the n-gram rule.
        """
        logits = np.array(logits, dtype=np.float64)  # a copy: (rows, vocab)
        logits[:, self.never(vocab)] = -np.inf
        if self.min_len:
            short = [row for row, reply in enumerate(replies) if len(reply) < self.min_len]
            logits[short, vocab.eos_id] = -np.inf
        if self.no_repeat_ngram or self.loop_guard:
            for row, reply in enumerate(replies):
                logits[row, self.repeats(reply) + self.loops(reply)] = -np.inf
        top = logits.max(axis=-1, keepdims=True)  # (rows, 1)
        stuck = np.isneginf(top[:, 0])
        if stuck.any():
            # With a tiny vocabulary everything can be banned: end the reply rather than crash.
            logits[stuck, vocab.eos_id] = top[stuck] = 0.0
        if self.temperature != 1.0:  # (x / t has its max at max(x) / t: division keeps order)
            logits /= self.temperature
            top /= self.temperature
        return log_softmax(logits, top)

    def never(self, vocab: Vocabulary) -> list[int]:
        """The tokens never emitted: <PAD>, <SOS>, <SEP>, and <UNK> unless allowed."""
        return [vocab.pad_id, vocab.sos_id, vocab.sep_id,
                *(() if self.allow_unk else (vocab.unk_id,))]

    def repeats(self, reply: Sequence[int]) -> list[int]:
        """Tokens that would complete an n-gram already in `reply` (n = no_repeat_ngram)."""
        return _continuations(reply, self.no_repeat_ngram) if self.no_repeat_ngram else []

    def loops(self, reply: Sequence[int]) -> list[int]:
        """Tokens that would make a LOOP_NGRAM-gram occur more than `loop_guard` times.

        The guard against replies that go round in circles ("i don't get the truth i don't get
        the truth ...") until max_len: unlike no_repeat_ngram, it lets a phrase come back a
        few times, as it does in a few training replies, but not without end.
        """
        if not self.loop_guard:
            return []
        seen = Counter(_continuations(reply, LOOP_NGRAM))
        return [token for token, count in seen.items() if count >= self.loop_guard]

    def next_tokens(self, logprobs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The next token of every row, (rows, vocab) -> (rows,). Strategies override this."""
        raise NotImplementedError


class GreedySampler(Sampler):
    """Always the most probable token."""

    def next_tokens(self, logprobs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return logprobs.argmax(axis=-1)

    def writes(self, draft: Sequence[int], vocab: Vocabulary) -> bool:
        """Whether this search writes exactly `draft` (ids) from a model whose most probable
        token that it may write (not in `never`), at each position of `draft` and at the
        <EOS> after it, is that token (the first one when several tie): whether no rule of
        the search bans any of them.

        Such a draft is the greedy reply without a search: speculative decoding, in which
        chatbot.decoding.bot takes the replies of known prompts as the drafts. The rules only ever
        remove tokens, so the model's favourite, when allowed, stays the favourite.
        """
        ended = len(draft) < self.max_len  # else the search stops at max_len, before <EOS>
        if len(draft) > self.max_len or (ended and len(draft) < self.min_len):
            return False
        banned = set(self.never(vocab))
        ids = [*draft, vocab.eos_id] if ended else list(draft)
        return not any(token in banned or token in self.repeats(ids[:t])
                       or token in self.loops(ids[:t]) for t, token in enumerate(ids))


class RandomSampler(Sampler):
    """A draw from the whole distribution (shaped only by the temperature)."""

    def next_tokens(self, logprobs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return _sample(logprobs, rng)


class TopKSampler(Sampler):
    """A draw among the k most probable tokens, renormalized."""

    def __init__(self, k: int = 10, **kwargs):
        _check("k", k, _is_int(k) and k >= 1, "an integer of at least 1")
        super().__init__(**kwargs)
        self.k = k

    def next_tokens(self, logprobs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.k >= logprobs.shape[-1]:  # every token is among the k most probable
            return _sample(logprobs, rng)
        top = np.argsort(-logprobs, axis=-1, kind="stable")[:, : self.k]  # (rows, k)
        kept = np.full_like(logprobs, -np.inf)
        np.put_along_axis(kept, top, np.take_along_axis(logprobs, top, axis=-1), axis=-1)
        return _sample(kept, rng)


class TopPSampler(Sampler):
    """Nucleus sampling: a draw among the fewest most-probable tokens whose mass reaches p.

    With `k`, only the k most probable tokens are considered first (their mass is not
    renormalized before the cut, as in keras-hub).
    """

    def __init__(self, p: float = 0.9, k: int | None = None, **kwargs):
        _check("p", p, _is_real(p) and 0 < p <= 1, "a number in (0, 1]")
        _check("k", k, k is None or (_is_int(k) and k >= 1), "None or an integer of at least 1")
        super().__init__(**kwargs)
        self.p = p
        self.k = k

    def next_tokens(self, logprobs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        order = np.argsort(-logprobs, axis=-1, kind="stable")[:, : self.k]  # (rows, <=k)
        probs = np.exp(np.take_along_axis(logprobs, order, axis=-1))
        before = np.cumsum(probs, axis=-1) - probs  # mass ranked above each token
        keep = before < self.p - 1e-9  # the tolerance stops rounding from adding a token
        keep[:, 0] = True
        kept = np.full_like(logprobs, -np.inf)
        values = np.where(keep, np.take_along_axis(logprobs, order, axis=-1), -np.inf)
        np.put_along_axis(kept, order, values, axis=-1)
        return _sample(kept, rng)


class BeamSampler(Sampler):
    """Beam search, one prompt at a time, `width` hypotheses ranked by summed logprob.

    Finished hypotheses are scored GNMT-style, `logprob / length ** length_penalty`, where the
    length counts the final <EOS> (len(tokens) + 1), or is len(tokens) for a reply cut at
    max_len. length_penalty=0 ranks by logprob alone; larger values favour longer replies.
    The search stops once `width` hypotheses have finished and no live one can still beat them.
    """

    def __init__(self, width: int = 5, length_penalty: float = 1.0, **kwargs):
        _check("width", width, _is_int(width) and width >= 1, "an integer of at least 1")
        _check("length_penalty", length_penalty, _is_real(length_penalty),
               "a finite number (0 ranks by logprob alone; 1 divides it by the length)")
        super().__init__(**kwargs)
        self.width = width
        self.length_penalty = length_penalty

    def check_nbest(self, nbest: int) -> None:
        _check("nbest", nbest, _is_int(nbest) and 1 <= nbest <= self.width,
               f"an integer between 1 and the beam width ({self.width}); raise the width")

    def search(self, engine: Engine, prompts: Sequence[Sequence[int]], vocab: Vocabulary,
               nbest: int, rng: np.random.Generator, on_step: StepHook | None = None
               ) -> list[list[Candidate]]:
        if on_step is not None:
            raise ValueError("beam search cannot stream its tokens: its hypotheses change "
                             "until the search ends")
        return [self._beam(engine, prompt, vocab)[:nbest] for prompt in prompts]

    def _beam(self, engine: Engine, prompt: Sequence[int], vocab: Vocabulary) -> list[Candidate]:
        logits, state = engine.start([prompt])  # one live hypothesis: (1, vocab)
        hyps: list[list[int]] = [[]]  # reply tokens of each live hypothesis
        scores = np.zeros(1)  # (live,) summed logprobs
        finished: list[Candidate] = []
        for t in range(self.max_len):
            logprobs = self.log_probs(logits, hyps, vocab)  # (live, vocab)
            total = (scores[:, None] + logprobs).ravel()  # (live * vocab,)
            # Of the 2 * width best extensions at most `width` end in <EOS>, so `width` go on.
            m = min(2 * self.width, total.size)
            top = np.argpartition(-total, m - 1)[:m]
            top = top[np.lexsort((top, -total[top]))]  # best first; ties: lowest index
            chosen = []  # flat indices of the extensions that stay live
            for flat in top:
                if total[flat] == -np.inf or len(chosen) == self.width:
                    break
                row, token = divmod(int(flat), logprobs.shape[1])
                if token == vocab.eos_id:
                    finished.append(self._candidate(hyps[row], total[flat], ended=True))
                else:
                    chosen.append(flat)
            finished = sorted(finished, key=lambda c: c.score, reverse=True)[: self.width]
            parents, tokens = np.divmod(np.array(chosen, dtype=int), logprobs.shape[1])
            hyps = [hyps[row] + [int(token)] for row, token in zip(parents, tokens)]
            scores = total[chosen]  # (live,)
            if not hyps or t + 1 == self.max_len:
                break  # at max_len the live hypotheses are cut and join the candidates
            if self._settled(finished, scores, t + 1):
                hyps = []  # no live hypothesis can beat the finished ones
                break
            state = select_state(state, parents)
            logits, state = engine.step(tokens, state)
        finished += [self._candidate(h, s, ended=False) for h, s in zip(hyps, scores)]
        return sorted(finished, key=lambda c: c.score, reverse=True)

    def _candidate(self, tokens: list[int], logprob: float, ended: bool) -> Candidate:
        length = len(tokens) + ended
        return Candidate(tokens, float(logprob), float(logprob) / length ** self.length_penalty)

    def _settled(self, finished: list[Candidate], scores: np.ndarray, length: int) -> bool:
        """Whether `width` hypotheses have finished and no live one can still beat them."""
        if len(finished) < self.width:
            return False
        # A live logprob only falls; its score is best at the shortest or longest final length.
        lengths = np.array([min(length + 1, self.max_len), self.max_len], dtype=np.float64)
        best = (scores[:, None] / lengths**self.length_penalty).max()
        return finished[-1].score >= best


SAMPLERS: dict[str, type[Sampler]] = {
    "greedy": GreedySampler,
    "random": RandomSampler,
    "top_k": TopKSampler,
    "top_p": TopPSampler,
    "beam": BeamSampler,
}


def get_sampler(name: str, **kwargs) -> Sampler:
    """The sampler registered under `name`, built with `kwargs`."""
    if name not in SAMPLERS:
        raise ChatbotError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")
    return SAMPLERS[name](**kwargs)
