"""Load a run directory and reply to text: the API behind `chat`, `reply` and your own scripts.

    from chatbot.bot import Bot
    bot = Bot.load("models/default")
    print(bot.reply("hello").text)

Decoding runs in NumPy from the saved weights, so loading takes well under a second and needs
no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from chatbot.config import RunConfig
from chatbot.errors import ChatbotError
from chatbot.models import arch_module
from chatbot.rundir import CONFIG, MODEL, VOCAB, check_run_dir
from chatbot.samplers import Sampler, get_sampler
from chatbot.text import Tokenizer
from chatbot.vocab import Vocabulary
from chatbot.weights import Weights, read_keras_weights


@dataclass(frozen=True)
class Reply:
    text: str  # the reply, detokenized
    tokens: list[str]  # the reply's tokens
    unknown: list[str]  # prompt tokens not in the vocabulary (read as <UNK>)


class Bot:
    def __init__(self, config: RunConfig, vocab: Vocabulary, weights: Weights):
        embedding = weights.get("embedding", [None])[0]
        if embedding is None or embedding.shape[0] != len(vocab):
            found = "none" if embedding is None else embedding.shape[0]
            raise ChatbotError(
                f"the vocabulary has {len(vocab)} tokens but the model's embedding has {found} "
                "rows: vocab.json and model.keras come from different runs; retrain the model"
            )
        self.config = config
        self.vocab = vocab
        self.tokenizer = Tokenizer(lowercase=config.text.lowercase)
        self.engine = arch_module(config.model.arch).Engine(weights, config.model, vocab)
        self.sampler: Sampler = get_sampler("greedy", max_len=config.decode.max_reply_len)

    @classmethod
    def load(cls, run_dir: str | Path) -> Bot:
        run_dir = check_run_dir(run_dir)
        config = RunConfig.load(run_dir / CONFIG)
        vocab = Vocabulary.load(run_dir / VOCAB)
        return cls(config, vocab, read_keras_weights(run_dir / MODEL))

    def reply(self, text: str) -> Reply:
        return self.reply_batch([text])[0]

    def reply_batch(self, texts: Sequence[str]) -> list[Reply]:
        """Replies to many prompts at once; an empty prompt gets an empty reply."""
        tokenized = [self.tokenizer.tokenize(t)[: self.config.data.max_len] for t in texts]
        rows = [i for i, toks in enumerate(tokenized) if toks]
        generated = (
            self.sampler(self.engine, [self.vocab.encode(tokenized[i]) for i in rows], self.vocab)
            if rows else []
        )
        by_row = dict(zip(rows, generated))
        replies = []
        for i, toks in enumerate(tokenized):
            reply_tokens = self.vocab.decode(by_row.get(i, []))
            replies.append(Reply(
                text=self.tokenizer.detokenize(reply_tokens),
                tokens=reply_tokens,
                unknown=self.vocab.unknown(toks),
            ))
        return replies
