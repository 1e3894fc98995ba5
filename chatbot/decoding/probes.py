"""Watch it learn: the replies to a few training prompts after every epoch of `chatbot train`.

    train(data, out, config, callbacks=[ProbeReplies.of])

Training knows nothing of replies (chatbot.training.train); this callback, made from the run
being trained, decodes with the epoch's weights exactly as the chat would with the same model.
The replies go to the log and, as a table, to the run's TensorBoard logs (`Run.table`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from chatbot.decoding.bot import Bot
from chatbot.models.weights import model_weights

TAG = "probe_replies"  # the TensorBoard text of the replies


class ProbeReplies(keras.callbacks.Callback):
    """After each epoch, logs `prompt -> reply` for each probe prompt of the run, and gives
    `table` (if any) the rows (prompt, reply)."""

    def __init__(self, bot_of: Callable[[keras.Model], Bot], probes: list[str],
                 log: Callable[[str], None],
                 table: Callable[[str, list[list[str]]], None] | None = None):
        super().__init__()
        self.bot_of, self.probes, self.log, self.table = bot_of, probes, log, table

    @classmethod
    def of(cls, run: Any) -> ProbeReplies | None:
        """The callback for a chatbot.training.train.Run (None when it has no probes)."""
        if not run.probes:
            return None
        data = run.data

        def bot_of(model: keras.Model) -> Bot:
            return Bot(run.config, data.vocab, model_weights(model), tokenizer=data.tokenizer)

        return cls(bot_of, run.probes, run.log, run.table)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        replies = self.bot_of(self.model).reply_batch(self.probes)
        for prompt, reply in zip(self.probes, replies):
            self.log(f"  {prompt!r} -> {reply.text!r}")
        if self.table is not None:
            self.table(TAG, [["prompt", "reply"], *([p, r.text] for p, r in
                                                    zip(self.probes, replies))])
