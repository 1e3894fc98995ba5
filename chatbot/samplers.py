"""Decoding strategies over a next-token engine, after keras-hub's samplers.

An engine has `start(prompts) -> (logits, state)` and `step(tokens, state) -> (logits, state)`,
with logits of shape (batch, vocab). The base `Sampler` owns the loop, the stopping at <EOS>, and
the rules every strategy shares: tokens that must never be emitted (<PAD>, <SOS>, <SEP>, and
<UNK> unless asked for), a minimum and maximum reply length. A strategy overrides one method,
`next_tokens`, that picks the next token of every row from its log-probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from chatbot.errors import ChatbotError
from chatbot.numpy_ops import log_softmax
from chatbot.vocab import Vocabulary


class Sampler:
    """Greedy-style loop: one token per row per step, until every row has emitted <EOS>."""

    def __init__(self, max_len: int = 40, min_len: int = 0, allow_unk: bool = False):
        if max_len < 1:
            raise ChatbotError(f"max_len must be at least 1, received {max_len}")
        if not 0 <= min_len <= max_len:
            raise ChatbotError(f"min_len must be in [0, max_len={max_len}], received {min_len}")
        self.max_len = max_len
        self.min_len = min_len
        self.allow_unk = allow_unk

    def __call__(self, engine, prompts: Sequence[Sequence[int]], vocab: Vocabulary) -> list[list[int]]:
        """Reply token ids for every prompt (without <EOS>)."""
        logits, state = engine.start(prompts)
        batch = len(prompts)
        replies: list[list[int]] = [[] for _ in range(batch)]
        done = np.zeros(batch, dtype=bool)
        for t in range(self.max_len):
            logprobs = log_softmax(self.constrain(logits, vocab, t))
            tokens = self.next_tokens(logprobs)
            for row in np.flatnonzero(~done):
                if tokens[row] == vocab.eos_id:
                    done[row] = True
                else:
                    replies[row].append(int(tokens[row]))
            if done.all():
                break
            logits, state = engine.step(tokens, state)
        return replies

    def constrain(self, logits: np.ndarray, vocab: Vocabulary, t: int) -> np.ndarray:
        """Logits with the never-emitted tokens set to -inf (a copy)."""
        logits = np.array(logits, dtype=np.float64)
        banned = [vocab.pad_id, vocab.sos_id, vocab.sep_id]
        if not self.allow_unk:
            banned.append(vocab.unk_id)
        if t < self.min_len:
            banned.append(vocab.eos_id)
        logits[:, banned] = -np.inf
        return logits

    def next_tokens(self, logprobs: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class GreedySampler(Sampler):
    """Always the most probable token."""

    def next_tokens(self, logprobs: np.ndarray) -> np.ndarray:
        return logprobs.argmax(axis=-1)


SAMPLERS: dict[str, type[Sampler]] = {"greedy": GreedySampler}


def get_sampler(name: str, **kwargs) -> Sampler:
    if name not in SAMPLERS:
        raise ChatbotError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")
    return SAMPLERS[name](**kwargs)
