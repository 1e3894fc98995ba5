"""Typing noise drawn in the training stream, on token ids: the noisy copies of every prompt
that the passes over a prepared corpus's shards add (chatbot.training.stream_batches).

The noise of a run in memory (chatbot.data.noise) changes the text and tokenizes it again.
Shards hold token ids, so here each change is made on the ids, as it comes out of the word
tokenizer:

    final punctuation   as written, dropped, or another mark (a Chinese prompt: the full-width
                        ones too), and one time in four nothing else
    typo                one word of four letters or more becomes <UNK>: what a typo turns it
                        into, since a misspelt word is not in the vocabulary (the prepare
                        counts no token of a noisy copy); none with sentencepiece, which
                        would read a misspelt word as other pieces
    word dropped        one token of a prompt of four or more left out
    word inserted       a word of the vocabulary put in before one of the prompt's tokens
    lead word           a discourse word first (noise.LEAD_WORDS, noise.ZH_LEAD_WORDS)
    Chinese             punctuation in the other width; 吗/呢 dropped before the final mark
    none                as the case change is to a lowercasing tokenizer

Like `noise.noisy`, a copy gets its final punctuation and, unless that alone changed it and one
time in four, one of the other changes that applies to it (drawn among those that do). The
contraction change has no equivalent here. Every draw is stateless, from a seed the stream
makes of the run's seed, the copy's place in its pool and a fingerprint of the record: a
resumed run draws what the uninterrupted one did.
"""

from __future__ import annotations

import numpy as np

from chatbot.data.noise import (
    DROP_WORDS,
    FINAL_ONLY,
    LEAD_WORDS,
    TYPO_LETTERS,
    ZH_LEAD_WORDS,
)
from chatbot.data.variants import FINAL_MARKS, ZH_FINAL_MARKS, ZH_PARTICLES, ZH_WIDTH
from chatbot.text.vocab import SPECIALS, Vocabulary
from chatbot.text.words import has_cjk

NONE, TYPO, DROP, INSERT, LEAD, CHINESE = range(6)  # the changes (see the module's doc)
PIECE_START = "\u2581"  # sentencepiece's mark of a piece that starts a word


class StreamNoise:
    """The noise of one vocabulary, in TensorFlow ops: `copy(tf, prompt, seed)` is a noisy copy
    of `prompt` (int32 ids), `max_len` tokens at most."""

    def __init__(self, vocab: Vocabulary, tokenize, max_len: int, typos: bool = True):
        self.vocab, self.max_len = vocab, max_len
        tokens = vocab.tokens
        index = vocab.index
        words = [t.removeprefix(PIECE_START) for t in tokens]  # sentencepiece: "▁word"
        self.marks = [index[m] for m in FINAL_MARKS if m in index]
        self.zh_marks = [index[m] for m in ZH_FINAL_MARKS if m in index] + self.marks
        self.final = [t in FINAL_MARKS or t in ZH_FINAL_MARKS for t in tokens]
        self.cjk = [has_cjk(t) for t in tokens]
        self.long = [typos and w.isascii() and w.isalpha() and len(w) >= TYPO_LETTERS
                     for w in words]
        self.particle = [t in ZH_PARTICLES for t in tokens]
        other = {**ZH_WIDTH, **{v: k for k, v in ZH_WIDTH.items()}}
        self.width = [index.get(other.get(t, t), i) for i, t in enumerate(tokens)]
        self.words = [i for i, (t, w) in enumerate(zip(tokens, words))
                      if t not in SPECIALS and w.isascii() and w.isalpha()] or [vocab.unk_id]
        self.leads = self._leads(tokenize, LEAD_WORDS, (",", "")), self._leads(
            tokenize, ZH_LEAD_WORDS, ("",))
        self.unk = vocab.unk_id

    def _leads(self, tokenize, words, after) -> list[list[int]]:
        """The id sequences of `words`, each followed by each of `after`, that the vocabulary
        holds every token of."""
        out = []
        for word in words:
            for tail in after:
                tokens = tokenize(word + tail)
                if tokens and not self.vocab.unknown(tokens):
                    out.append(self.vocab.encode(tokens))
        return out or [[]]

    def tables(self, tf) -> dict:
        """The tables as TensorFlow constants (made once per dataset)."""
        def ragged(rows):  # a ragged table as its values and row starts
            return (tf.constant([i for row in rows for i in row] or [0], tf.int32),
                    tf.constant(np.cumsum([0, *map(len, rows)]), tf.int32))
        return {"final": tf.constant(self.final), "cjk": tf.constant(self.cjk),
                "long": tf.constant(self.long), "particle": tf.constant(self.particle),
                "width": tf.constant(self.width, tf.int32),
                "words": tf.constant(self.words, tf.int32),
                "marks": (tf.constant(self.marks, tf.int32, [len(self.marks)]),
                          tf.constant(self.zh_marks, tf.int32, [len(self.zh_marks)])),
                "leads": (ragged(self.leads[0]), ragged(self.leads[1]))}

    def copy(self, tf, t: dict, prompt, seed):
        """A noisy copy of `prompt` (1-D int32), drawn with the stateless `seed` (2 int64s).

        Branches only pick a table (English or Chinese): the copy is always lead + words[:at] +
        inserted + words[at + dropped:] + ending, with one token of words made <UNK> or every
        token put in the other width, and the draws set which of these parts are empty."""
        draw = tf.random.stateless_uniform([8], seed)  # the copy's random numbers

        def pick(u, size):  # an index below `size` (0 if size is 0) from the uniform draw `u`
            return tf.minimum(tf.cast(u * tf.cast(size, tf.float32), tf.int32),
                              tf.maximum(size - 1, 0))

        n = tf.size(prompt)
        padded = tf.concat([prompt, [0]], 0)  # 0, <PAD>: what an index past the end reads
        chinese = tf.reduce_any(tf.gather(t["cjk"], prompt))
        tail = _trailing(tf, tf.gather(t["final"], prompt))  # the final marks: a run at the end
        b = n - tail
        words, current = prompt[:b], prompt[b:]
        # The ending: as written (0), dropped (1, if it has marks), or one of the marks (2 + k).
        marks = tf.cond(chinese, lambda: t["marks"][1], lambda: t["marks"][0])
        forms = 1 + tf.size(marks) + tf.cast(tail > 0, tf.int32)
        form = pick(draw[0], forms)
        form = tf.where(b > 0, form + tf.cast((tail == 0) & (form >= 1), tf.int32), 0)
        mark = tf.concat([marks, [0]], 0)[tf.clip_by_value(form - 2, 0, tf.size(marks))]
        ending = tf.concat([current[: tf.where(form == 0, tail, 0)],
                            mark[None][: tf.cast(form >= 2, tf.int32)]], 0)
        changed = (form == 1) | ((form >= 2) & ((tail != 1) | (mark != padded[n - 1])))
        # One change, drawn among those that apply (none: the final punctuation alone).
        long = tf.cast(tf.where(tf.gather(t["long"], words))[:, 0], tf.int32)
        particle = (b > 0) & tf.gather(t["particle"], padded[tf.maximum(b - 1, 0)])
        applies = tf.stack([True, tf.size(long) > 0, b >= DROP_WORDS, (b > 0) & ~chinese,
                            True, chinese])  # NONE, TYPO, DROP, INSERT, LEAD, CHINESE
        count = tf.reduce_sum(tf.cast(applies, tf.int32))
        which = tf.cast(tf.where(applies)[pick(draw[2], count), 0], tf.int32)
        which = tf.where(changed & (draw[1] < FINAL_ONLY), NONE, which)
        # Where it happens, and what it does.
        at = tf.where(which == TYPO, tf.concat([long, [0]], 0)[pick(draw[3], tf.size(long))],
                      pick(draw[3], b))
        drop_particle = (which == CHINESE) & particle & (draw[4] < 0.5)
        at = tf.where(drop_particle, b - 1, at)
        dropped = tf.cast((which == DROP) | drop_particle, tf.int32)
        words = tf.where((tf.range(b) == at) & (which == TYPO), self.unk, words)
        word = tf.gather(t["words"], pick(draw[5], tf.size(t["words"])))[None]
        values, starts = tf.cond(chinese, lambda: t["leads"][1], lambda: t["leads"][0])
        row = pick(draw[6], tf.size(starts) - 1)
        lead = values[starts[row]: starts[row + 1]]
        noisy = tf.concat([lead[: tf.where(which == LEAD, tf.size(lead), 0)], words[:at],
                           word[: tf.cast(which == INSERT, tf.int32)], words[at + dropped:],
                           ending], 0)
        widths = (which == CHINESE) & ~drop_particle
        noisy = tf.where(widths, tf.gather(t["width"], noisy), noisy)
        return noisy[: self.max_len]


def _trailing(tf, flags):
    """How many of the last entries of the 1-D bool `flags` are all True."""
    reversed_ = tf.cast(tf.reverse(flags, [0]), tf.int32)
    return tf.reduce_sum(tf.math.cumprod(reversed_))


