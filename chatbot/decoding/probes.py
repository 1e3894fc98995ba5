"""Watch it learn: the replies to a few training prompts after every epoch of `chatbot train`.

    train(data, out, config, callbacks=[ProbeReplies.of])

Training knows nothing of replies (chatbot.training.train); this callback, made from the run
being trained, decodes with the epoch's weights exactly as the chat would with the same model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from chatbot.decoding.bot import Bot
from chatbot.models.weights import model_weights


class ProbeReplies(keras.callbacks.Callback):
    """After each epoch, logs `prompt -> reply` for each probe prompt of the run."""

    def __init__(self, bot_of: Callable[[keras.Model], Bot], probes: list[str],
                 log: Callable[[str], None]):
        super().__init__()
        self.bot_of, self.probes, self.log = bot_of, probes, log

    @classmethod
    def of(cls, run: Any) -> ProbeReplies | None:
        """The callback for a chatbot.training.train.Run (None when it has no probes)."""
        if not run.probes:
            return None
        data = run.data

        def bot_of(model: keras.Model) -> Bot:
            return Bot(run.config, data.vocab, model_weights(model), tokenizer=data.tokenizer)

        return cls(bot_of, run.probes, run.log)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        replies = self.bot_of(self.model).reply_batch(self.probes)
        for prompt, reply in zip(self.probes, replies):
            self.log(f"  {prompt!r} -> {reply.text!r}")
