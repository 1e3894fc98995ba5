"""The stop rule's measure: what the model has learned, after every epoch of `chatbot train`.

    train(data, out, config, callbacks=[AnswerRates.of, ProbeReplies.of])

Training knows nothing of replies (chatbot.training.train). This callback, made from the run
being trained, decodes with the epoch's weights as the chat would, and adds to the epoch's logs,
before history.csv, early stopping and the checkpoint read them:

    answer_rate   the model alone (no memory, no fallback) on a fixed sample of the training
                  prompts: the share it answers with one of their own replies
    variant_rate  the bot as it chats (memory and fallback on) on one typing variant of each
                  sampled prompt (chatbot.data.variants, seed STOP_SEED)
    quality       the lower of the two: what `train.monitor` watches by default, and what
                  `train.stop_at` is the target of (chatbot.training.callbacks.EarlyStopping)

No clock is read: the sample and its variants come from the run's seed and data alone, so the
same data and settings stop at the same epoch on a busy machine and a quiet one.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import keras

from chatbot.config import MEASURED
from chatbot.data.memory import Memory
from chatbot.data.variants import one_variant_each
from chatbot.decoding.bot import Bot, Reply
from chatbot.decoding.rerank import reply_scores
from chatbot.decoding.samplers import GreedySampler
from chatbot.models.weights import model_weights

SAMPLE = 400  # training prompts at most in the fixed sample (their variants as many)
STOP_SEED = 3  # the stop rule's typing variants: 0 reports, 7 calibrates, 11 chooses settings

Query = str | tuple[str, ...]


class AnswerRates(keras.callbacks.Callback):
    """After each epoch, the answer rates of a fixed sample of known prompts (see module doc)."""

    measures = MEASURED  # the log entries it adds: train() may monitor them

    def __init__(self, bot_of: Callable[[keras.Model], Bot], asked: Sequence[Query],
                 references: dict[Query, set[str]], variants: Sequence[tuple[Query, Query]],
                 log: Callable[[str], None], monitor: str = "quality", target: float = 0.0,
                 epochs: int = 0):
        super().__init__()
        self.bot_of, self.asked, self.references = bot_of, list(asked), references
        self.variants, self.log = list(variants), log
        self.monitor, self.pace = monitor, Pace(target, epochs)
        self.bot: Bot | None = None  # made at the first epoch's end, then given new weights

    @classmethod
    def of(cls, run: Any) -> AnswerRates | None:
        """The callback for a chatbot.training.train.Run (None for a run without pairs: the
        language model of `chatbot pretrain`)."""
        data, config = run.data, run.config
        if config.data.text or not data.train_pairs:
            return None
        turns = config.data.context_turns
        references: dict[Query, set[str]] = {}
        for pair in data.train_pairs:
            references.setdefault(pair.query(turns), set()).add(pair.reply)
        asked = list(references)
        if len(asked) > SAMPLE:
            asked = random.Random(config.train.seed).sample(asked, SAMPLE)
        # A conversation's variant changes its last turn, the one the user types.
        variants = [(typed if isinstance(query, str) else (*query[:-1], typed), query)
                    for query in asked
                    for typed, _ in one_variant_each([_last(query)], STOP_SEED)]
        # The memory the finished run will have (chatbot.training.train._start_run_dir)
        memory = Memory.build([*data.train_pairs, *data.val_pairs], turns)

        def bot_of(model: keras.Model) -> Bot:
            return Bot(config, data.vocab, model_weights(model), memory,
                       tokenizer=data.tokenizer)

        train = config.train
        target = train.stop_at if train.monitor in MEASURED else 0.0
        return cls(bot_of, asked, references, variants, run.log, train.monitor, target,
                   train.epochs)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if self.bot is None:
            self.bot = self.bot_of(self.model)
        else:  # the bot of the first epoch, with this epoch's weights
            self.bot.use_weights(model_weights(self.model))
        bot, chats = self.bot, self.bot.config.decode  # the settings it chats with
        bot.configure(retrieval=False, fallback=False)
        alone = self._alone(bot)
        bot.configure(retrieval=chats.retrieval, fallback=chats.fallback)  # as it chats
        typed = self._rate(bot, self.variants)
        rates = {"answer_rate": alone, "variant_rate": typed, "quality": min(alone, typed)}
        if logs is not None:
            logs.update(rates)
        self.log(f"  the model alone answers {alone:.1%} of {len(self.asked)} known prompts; "
                 f"the bot {typed:.1%} of {len(self.variants)} typing variants of them"
                 + self.pace.note(epoch, rates.get(self.monitor, 0.0)))

    def _alone(self, bot: Bot) -> float:
        """_rate of the sample as typed, the model alone, without a search where none is needed.

        Greedy search writes a reply when, fed that reply, the model's most probable token of
        those it may write is the reply's own at every position and at the <EOS> after it, and
        no rule of the search bans one of them (GreedySampler.writes). So one teacher-forced
        pass over every sampled prompt's own replies (chatbot.decoding.rerank.reply_scores)
        tells which prompts the search answers, as the chat's speculative decoding does with
        the replies of known prompts (chatbot.decoding.policy). A prompt is searched only when
        that pass cannot tell: one of its replies is cut by max_reply_len (the search would
        stop before an <EOS>), or the search is not greedy. (The pass and the search agree to
        float32 rounding, which could only matter where two tokens tie; tests check that the
        rates are the search's at every epoch.)
        """
        if not self.asked:
            return 0.0
        policy = bot.policy()
        sampler, vocab = policy.sampler, bot.vocab
        if not isinstance(sampler, GreedySampler):
            return self._rate(bot, [(query, query) for query in self.asked])
        prompts = [vocab.encode(bot.prompt_tokens(query)) for query in self.asked]
        rows = [(i, vocab.encode(policy.reply_key(text))) for i, query in enumerate(self.asked)
                if prompts[i] for text in sorted(self.references[query])]
        _, hits = reply_scores(bot.engine, [prompts[i] for i, _ in rows],
                               [reply for _, reply in rows], vocab.eos_id,
                               never=sampler.never(vocab))
        right, unsure = set(), set()
        for (i, reply), hit in zip(rows, hits.tolist()):
            if len(reply) >= sampler.max_len:
                unsure.add(i)
            elif hit == len(reply) + 1 and sampler.writes(reply, vocab):
                right.add(i)
        searched = [(self.asked[i], self.asked[i]) for i in sorted(unsure - right)]
        return (len(right) + self._answered(bot, searched)) / len(self.asked)

    def _rate(self, bot: Bot, asked: Sequence[tuple[Query, Query]]) -> float:
        """The share of (typed, meant) whose reply is one of `meant`'s replies."""
        return self._answered(bot, asked) / len(asked) if asked else 0.0

    def _answered(self, bot: Bot, asked: Sequence[tuple[Query, Query]]) -> int:
        """How many (typed, meant) get one of `meant`'s replies to `typed`."""
        key = bot.policy().reply_key
        replies: list[Reply] = bot.reply_all([typed for typed, _ in asked])
        return sum(tuple(reply.tokens) in {key(text) for text in self.references[meant]}
                   for (_, meant), reply in zip(asked, replies))


class Pace:
    """An estimate of the time left to the target, from the pace of the last epochs: shown
    to the person waiting, never used to stop (the stop rule reads no clock)."""

    def __init__(self, target: float, epochs: int):
        self.target, self.epochs = target, epochs
        self.seen: list[tuple[float, float]] = []  # (time, quality) at each epoch's end

    def note(self, epoch: int, quality: float) -> str:
        """"; target T: about N more epochs, M s, at this pace" after 0-based `epoch`, or ""
        when unknown."""
        self.seen.append((time.perf_counter(), quality))
        if not self.target or quality >= self.target or len(self.seen) < 3:
            return ""
        (then, before), (now, _) = self.seen[-3], self.seen[-1]
        gain = (quality - before) / 2  # per epoch, over the last two
        if gain <= 0:
            return ""
        epochs = min(math.ceil((self.target - quality) / gain), self.epochs - epoch - 1)
        if epochs < 1:
            return ""
        seconds = epochs * (now - then) / 2
        return (f"; target {self.target:.0%}: about {epochs} more epoch(s), "
                f"{_duration(seconds)}, at this pace")


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _last(query: Query) -> str:
    return query if isinstance(query, str) else query[-1]
