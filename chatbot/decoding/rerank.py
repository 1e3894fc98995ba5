"""The model as a judge of whole replies: log-probabilities of given replies, and reranking.

A sampler proposes replies token by token. Here the model scores replies that are already
written, from any source: the sampler's n-best, or the replies of known prompts that the
retrieval memory found (chatbot/data/memory.py). Two rerankings use those scores:

- MMI (Li et al. 2016, "A Diversity-Promoting Objective Function for Neural Conversation
  Models", the anti-language-model form): score(r) = log p(r | prompt) - lambda * log p(r),
  with p(r) the model's probability of r after an empty prompt. Replies that the model would
  give to anything ("i don't know") lose what they gained by being generic.
- retrieval: known replies of similar known prompts join the candidates with a bonus for the
  similarity of their prompt; the model's own mean log-probability still has its say, so a
  known reply that makes no sense for this prompt is not taken just because the prompt looks
  alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from chatbot.models.base import Engine
from chatbot.models.kernels import log_softmax


def reply_logprobs(engine: Engine, prompts: Sequence[Sequence[int]],
                   replies: Sequence[Sequence[int]], eos_id: int,
                   batch_size: int = 256) -> np.ndarray:
    """log p(replies[i] + <EOS> | prompts[i]) of each row, summed over its tokens: (rows,)."""
    return reply_scores(engine, prompts, replies, eos_id, batch_size)[0]


def reply_scores(engine: Engine, prompts: Sequence[Sequence[int]],
                 replies: Sequence[Sequence[int]], eos_id: int, batch_size: int = 256,
                 never: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Per row, log p(replies[i] + <EOS> | prompts[i]) summed over its tokens, and how many of
    them (the <EOS> included) were the model's most probable, of the tokens not in `never`:
    (rows,) each.

    Rows go through the engine in batches (see teacher_forced_rows).
    """
    if len(prompts) != len(replies):
        raise ValueError(f"{len(prompts)} prompts but {len(replies)} replies")
    # Rows of similar reply length together: fewer steps fed to rows that have ended.
    order = sorted(range(len(replies)), key=lambda i: len(replies[i]))
    total = np.zeros(len(replies))
    hits = np.zeros(len(replies), dtype=np.int64)
    for start in range(0, len(order), batch_size):
        rows = order[start: start + batch_size]
        total[rows], hits[rows] = teacher_forced_rows(engine, [prompts[i] for i in rows],
                                                      [[*replies[i], eos_id] for i in rows],
                                                      never)
    return total, hits


def teacher_forced_rows(engine: Engine, prompts: Sequence[Sequence[int]],
                        targets: Sequence[Sequence[int]], never: Sequence[int] = ()
                        ) -> tuple[np.ndarray, np.ndarray]:
    """One batch through the engine with the true targets fed back (teacher forcing): per row,
    the summed log-probability of its targets and how many were the arg-max (of the tokens
    not in `never`), (rows,) each.

    Each row's prompt is read once; then every row is fed its own targets token by token, and
    rows whose targets have ended are fed <PAD> and no longer counted. An engine that reads
    whole sequences at once (the transformer's `teacher_forced`) does it in one pass instead.
    `chatbot.evaluate` scores pairs with it too, so replies are judged as training's accuracy
    judges them.
    """
    scored = engine.teacher_forced(prompts, targets, never)  # None: walk token by token
    if scored is not None:
        return scored
    lengths = np.array([len(t) for t in targets])
    padded = np.zeros((len(targets), lengths.max()), dtype=np.int64)  # (batch, longest target)
    for row, t in enumerate(targets):
        padded[row, : len(t)] = t
    total, hits = np.zeros(len(targets)), np.zeros(len(targets), dtype=np.int64)
    logits, state = engine.start([list(p) for p in prompts])
    rows = np.arange(len(targets))
    for t in range(padded.shape[1]):
        live = lengths > t
        logprobs = log_softmax(np.asarray(logits, dtype=np.float64))
        total += np.where(live, logprobs[rows, padded[:, t]], 0.0)
        logprobs[:, list(never)] = -np.inf  # (after its own entry was summed)
        hits += live & (logprobs.argmax(axis=-1) == padded[:, t])
        if t + 1 < padded.shape[1]:
            logits, state = engine.step(padded[:, t], state)  # ended rows read <PAD>, ignored
    return total, hits


def mmi_scores(engine: Engine, prompts: Sequence[Sequence[int]],
               replies: Sequence[Sequence[int]], eos_id: int,
               weight: float) -> tuple[np.ndarray, np.ndarray]:
    """(log p(r | prompt) summed, and the MMI score) of each row's reply r and prompt.

    The score is mean log p(r | prompt) - weight * mean log p(r | empty prompt), both per scored
    token (the reply's tokens and its <EOS>), so replies of different lengths compare.
    """
    scored = np.array([len(r) + 1 for r in replies], dtype=np.float64)
    given = reply_logprobs(engine, prompts, replies, eos_id)
    score = given / scored
    if weight:
        score = score - weight * reply_logprobs(engine, [[]] * len(replies), replies,
                                                eos_id) / scored
    return given, score


def token_logprobs(engine: Engine, prompt: Sequence[int], replies: Sequence[Sequence[int]],
                   top: int = 0) -> list[list[tuple[float, list[tuple[int, float]]]]]:
    """For each reply (ids, the final <EOS> included if the caller puts it there), for each of
    its tokens: its log-probability under the model after `prompt` and the tokens before it,
    and the `top` most probable tokens at that position with theirs, best first. The model's
    own distribution (temperature 1, before any decoding rule): what an API's `logprobs`
    report. The replies go through the engine together, as one batch of rows."""
    out: list[list[tuple[float, list[tuple[int, float]]]]] = [[] for _ in replies]
    longest = max((len(r) for r in replies), default=0)
    if not longest:
        return out
    padded = np.zeros((len(replies), longest), dtype=np.int64)  # ended rows read <PAD>
    for row, reply in enumerate(replies):
        padded[row, : len(reply)] = reply
    logits, state = engine.start([list(prompt)] * len(replies))
    for t in range(longest):
        logprobs = log_softmax(np.asarray(logits, dtype=np.float64))  # (rows, vocab)
        for row, reply in enumerate(replies):
            if t < len(reply):
                out[row].append((float(logprobs[row, reply[t]]),
                                 _best(logprobs[row], top)))
        if t + 1 < longest:
            logits, state = engine.step(padded[:, t], state)
    return out


def _best(logprobs: np.ndarray, top: int) -> list[tuple[int, float]]:
    """The `top` most probable tokens of one row with their log-probabilities, best first
    (ties in token order); the whole vocabulary is not sorted for a few of them."""
    if not top:
        return []
    top = min(top, len(logprobs))
    cut = -np.partition(-logprobs, top - 1)[top - 1]  # the top-th largest value
    above = np.flatnonzero(logprobs > cut)
    some = np.concatenate([above, np.flatnonzero(logprobs == cut)[: top - len(above)]])
    best = some[np.lexsort((some, -logprobs[some]))]
    return [(int(i), float(logprobs[i])) for i in best]
