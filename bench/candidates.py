"""Candidates for cheaper epochs (#27): one training run of the default corpus with the given
settings, printing after every epoch one JSON line, prefixed "TTQ TAG": the seconds of training
so far (measuring left out), the loss, the share of all training prompts the model alone
answers (with --full), and the stop rule's sampled rates. bench/candidates.json holds such
lines of the runs that chose the defaults.

    .venv/bin/python bench/candidates.py --full --lr 2e-2 --decay 0.85 --tag e3
"""

from __future__ import annotations

import argparse
import json
import time

import keras
from harness import ROOT

from chatbot.config import MEASURED, RunConfig
from chatbot.decoding.bot import Bot
from chatbot.decoding.quality import AnswerRates
from chatbot.evaluate import answer_rate
from chatbot.models.weights import model_weights
from chatbot.training.train import train


class Clock:
    """Training seconds, without the time spent measuring."""

    def __init__(self):
        self.started, self.measuring = 0.0, 0.0

    def training(self) -> float:
        return time.perf_counter() - self.started - self.measuring


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag, kind, default in (("--batch", int, 32), ("--noise", int, 1), ("--pool", int, 8),
                                ("--lr", float, 2e-2), ("--decay", float, 0.85),
                                ("--hidden", int, 384), ("--epochs", int, 30),
                                ("--stop-at", float, 0.95), ("--seed", int, 1234)):
        parser.add_argument(flag, type=kind, default=default)
    parser.add_argument("--full", action="store_true", help="measure every training prompt")
    parser.add_argument("--zero-bias", action="store_true",
                        help="start the output layer's bias at zeros, not at the log frequency "
                             "of each target token (train.frequency_bias, the default since "
                             "c26d38e; the runs of selection_seeds_7_11 gave it as --bias-init)")
    parser.add_argument("--beta2", type=float, default=0.999, help="Adam's beta_2")
    parser.add_argument("--clipnorm", type=float, default=1.0, help="0: no clipping")
    parser.add_argument("--out", default=str(ROOT / "bench/.work/candidates/run"))
    parser.add_argument("--tag", default="run")
    args = parser.parse_args(argv)
    clock = Clock()

    class Measured(AnswerRates):
        def on_train_begin(self, logs=None):
            if args.beta2 != 0.999:
                self.model.optimizer.beta_2 = args.beta2
            clock.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds, begun = clock.training(), time.perf_counter()
            super().on_epoch_end(epoch, logs)
            row = {"epoch": epoch + 1, "train_s": round(seconds, 1),
                   "loss": round(logs["loss"], 4)}
            if args.full:
                bot = Bot(self.run.config, self.run.data.vocab, model_weights(self.model),
                          tokenizer=self.run.data.tokenizer)
                bot.configure(retrieval=False, fallback=False)
                row["alone_all"] = round(answer_rate(bot, self.run.data.train_pairs)[
                    "answer_rate"], 4)
            row |= {name: round(logs[name], 4) for name in MEASURED}
            clock.measuring += time.perf_counter() - begun
            print("TTQ", args.tag, json.dumps(row), flush=True)

    def measured(run) -> keras.callbacks.Callback:
        callback = Measured.of(run)
        callback.run = run
        return callback

    config = RunConfig()
    train_ = config.train
    train_.batch_size, train_.noise_copies, train_.noise_pool = args.batch, args.noise, args.pool
    train_.learning_rate, train_.lr_decay, train_.epochs = args.lr, args.decay, args.epochs
    train_.stop_at, train_.probes, train_.seed = args.stop_at, 0, args.seed
    config.model.hidden_dim = args.hidden
    train_.clipnorm, train_.frequency_bias = args.clipnorm, not args.zero_bias
    train(ROOT / "data/chatterbot.tsv", args.out, config, overwrite=True, callbacks=[measured],
          log=lambda line: print(line) if line.startswith(("stopped", "best")) else None,
          verbose=0)


if __name__ == "__main__":
    main()
