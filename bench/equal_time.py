"""Quality at equal training time: one job trains a run with `chatbot train`'s own function under
a wall-clock budget, another scores the finished run on held-out pairs. bench/transformer.py
runs both for every architecture and dataset, each in its own process (bench/harness.py).

Held-out figures (`QualityJob`), all from the run directory alone, in NumPy:

- perplexity per word: exp(total NLL of the reply tokens and <EOS>, teacher-forced, / (words
  + replies)), where words are the replies' tokens as the word tokenizer counts them and each
  reply adds one for its <EOS>. The numerator is the model's own (its tokenizer: words or
  sentencepiece pieces); the denominator counts the same text for every model of a dataset
  (but for replies longer than max_len tokens, see `per_word`), so the figure compares across
  tokenizers. Also the usual per-token perplexity of the model's tokens;
- chrF (sacrebleu) of greedy replies against every reference of their prompt, and the answer
  rate (chatbot.evaluate.answer_rate: the reply equals one of the references token for token),
  for the model alone and for the hybrid (retrieval on, as the chat replies);
- the known-prompt answer rates that `chatbot train` measured on the training prompts
  (metrics.json: the hybrid and the model alone).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import ROOT, JobError

from chatbot.config import TextConfig, preset
from chatbot.data.pairs import Pair, read_pairs
from chatbot.decoding.bot import Bot
from chatbot.evaluate import answer_rate, evaluate
from chatbot.rundir import METRICS, MODEL, read_history, read_json
from chatbot.text.words import Tokenizer

WORDS = Tokenizer(lowercase=TextConfig().lowercase)  # what "a word" is for perplexity per word
EPOCH_LINE = " pairs/s, "  # chatbot.training.callbacks.EpochReport's line at the end of every epoch


@dataclass(frozen=True)
class TrainJob:
    """Trains `preset` (with `tokenizer`) on `data` for `minutes` of wall-clock time."""

    data: str  # TSV the run trains on (split by the run itself: val_fraction, seed)
    out: str  # run directory
    preset: str  # chatbot.config.PRESETS
    minutes: float  # TrainConfig.max_minutes: stop after the first epoch that ends past it
    tokenizer: str = "word"  # TextConfig.tokenizer
    seed: int = 1234  # TrainConfig.seed: the split, the shuffling, the initial weights
    reuse: bool = False  # keep a finished run in `out` (its settings are not checked)
    name: str = ""
    arch: str = ""  # ModelConfig.arch instead of the preset's ("": the preset's)

    def run(self) -> dict[str, Any]:
        """Epochs trained, seconds from the call to the end of the last epoch (what the budget
        bounds) and in all (with the data preparation and the final evaluation)."""
        out = Path(self.out)
        if self.reuse and (out / METRICS).exists():
            print(f"[{self.name}] reusing {out}", file=sys.stderr, flush=True)
            return {"reused": True, "epochs": len(read_history(out))}
        from chatbot.evaluate import evaluate_training
        from chatbot.training.train import train

        config = preset(self.preset)
        config.train.max_minutes = self.minutes
        config.train.seed = self.seed
        if self.arch:
            config.model.arch = self.arch
        if self.tokenizer != "word":
            if not hasattr(config.text, "tokenizer"):
                raise JobError("TextConfig has no tokenizer setting in this checkout")
            config.text.tokenizer = self.tokenizer
        epoch_ends: list[float] = []

        def log(message: str) -> None:
            if EPOCH_LINE in message:
                epoch_ends.append(time.perf_counter())
            print(f"    [{self.name}] {message}", file=sys.stderr, flush=True)

        started = time.perf_counter()
        result = train(self.data, out, config, overwrite=True, log=log, verbose=0)
        evaluate_training(result, log=log)  # as `chatbot train` does: metrics.json
        return {"reused": False, "epochs": result.epochs,
                "train_wall_s": round(epoch_ends[-1] - started, 1) if epoch_ends else None,
                "total_s": round(time.perf_counter() - started, 1)}


@dataclass(frozen=True)
class QualityJob:
    """Scores the finished run `run_dir` on held-out pairs (see the module's docstring)."""

    run_dir: str
    held_out: str = ""  # TSV of held-out pairs; "": the run's own validation split
    name: str = ""

    def run(self) -> dict[str, Any]:
        bot = Bot.load(self.run_dir)
        pairs = self.held_out_pairs(bot)
        if not pairs:
            raise JobError(f"{self.run_dir}: no held-out pairs to score")
        bot.configure(retrieval=False)  # the model alone
        alone = evaluate(bot, pairs)
        alone_rate = answer_rate(bot, pairs)
        bot.configure(retrieval=True)  # as the chat replies
        hybrid = evaluate(bot, pairs)
        hybrid_rate = answer_rate(bot, pairs)
        metrics = read_json(Path(self.run_dir) / METRICS)
        return {
            **self.settings(bot),
            "held_out": {**per_word(bot, pairs, alone),
                         "prompts": alone["prompts"],
                         "known_prompts_among_them": self.known_among(bot, pairs),
                         "perplexity_per_token": round(alone["perplexity"], 3),
                         "model_tokens": alone["tokens"],
                         "chrf": round(alone["chrf"], 2),
                         "answer_rate": round(alone_rate["answer_rate"], 4),
                         "chrf_hybrid": round(hybrid["chrf"], 2),
                         "answer_rate_hybrid": round(hybrid_rate["answer_rate"], 4),
                         "mean_reply_tokens": round(alone["mean_reply_tokens"], 2),
                         "same_reply_share": round(alone["same_reply_share"], 4),
                         "most_common_reply": alone["most_common_reply"],
                         "missed_examples": alone_rate["missed_examples"][:3]},
            "known": {"prompts": metrics["train"]["answer_rate"]["prompts"],
                      "answer_rate_hybrid": round(metrics["train"]["answer_rate"]
                                                  ["answer_rate"], 4),
                      "answer_rate_model": round(metrics["train_model_alone"]["answer_rate"]
                                                 ["answer_rate"], 4)
                      if "train_model_alone" in metrics else None},
            "history": history(Path(self.run_dir)),
        }

    def held_out_pairs(self, bot: Bot) -> list[Pair]:
        """The pairs to score: the held-out file, or the run's own validation split. That split
        is in the run's memory (which holds every pair of its data), so the bot's memory then
        becomes that of its training split alone: the hybrid figures are of unseen pairs."""
        if self.held_out:
            return read_pairs(self.held_out, on_bad_lines="skip").pairs
        from known import run_split

        from chatbot.data.memory import Memory

        train, val = run_split(bot.config, bot.config.data.path)
        if bot.memory is not None:
            bot.memory = Memory.build(train, bot.config.data.context_turns)
        return val

    def known_among(self, bot: Bot, pairs: list[Pair]) -> int:
        """Held-out prompts that are also training prompts (the default corpus repeats prompts
        with other replies); for fra-eng, 0 by construction."""
        if bot.memory is None:
            return 0
        known = set(bot.memory.prompts)
        return len({p.prompt for p in pairs} & known)

    def settings(self, bot: Bot) -> dict[str, Any]:
        from chatbot.models.weights import read_keras_weights

        weights = read_keras_weights(Path(self.run_dir) / MODEL)
        model = bot.config.model
        return {"arch": model.arch, "tokenizer": getattr(bot.config.text, "tokenizer", "word"),
                "vocab": len(bot.vocab), "embedding_dim": model.embedding_dim,
                "hidden_dim": model.hidden_dim, "num_layers": model.num_layers,
                "parameters": int(sum(a.size for layer in weights.values()
                                      for a in layer.values())),
                "learning_rate": bot.config.train.learning_rate,
                "run": _shown(self.run_dir)}


def per_word(bot: Bot, pairs: list[Pair], scored: dict[str, Any]) -> dict[str, Any]:
    """Perplexity per word from evaluate()'s teacher-forced figures (see the module's
    docstring), with what the model's tokenizer made of the replies.

    Scoring truncates a reply to max_len tokens of the model's tokenizer, as training does, so
    the words counted are those of the text scored: the truncated tokens, detokenized, as the
    word tokenizer splits them (for a reply that fits, the words of the reply)."""
    max_len, tokenizer = bot.config.data.max_len, bot.tokenizer
    nll = math.log(scored["perplexity"]) * scored["tokens"]  # summed over every scored token
    reply_tokens = [tokenizer.tokenize(p.reply) for p in pairs]
    words = sum(len(WORDS.tokenize(tokenizer.detokenize(t[:max_len]))) for t in reply_tokens)
    kept = [t for tokens in reply_tokens for t in tokens[:max_len]]
    return {"pairs": len(pairs), "words_with_eos": words + len(pairs),
            "nll_total": round(nll, 2),
            "perplexity_per_word": round(math.exp(nll / (words + len(pairs))), 3),
            "replies_truncated": sum(len(t) > max_len for t in reply_tokens),
            # Word tokenizer: reply tokens out of its vocabulary are <UNK> targets, and a model
            # that predicts <UNK> there is scored right; sentencepiece spells every word out.
            "reply_unk_share": round(sum(t not in bot.vocab for t in kept) / max(1, len(kept)),
                                     4)}


def history(run: Path) -> dict[str, Any]:
    """The run's epochs: training loss, validation loss, and the epoch of the best validation
    loss (the saved model is the run's best by its monitor, training loss in these presets)."""
    frame = read_history(run)
    if frame.empty:
        return {}
    out = {"epochs": len(frame), "last_loss": round(float(frame["loss"].iloc[-1]), 4)}
    if "val_loss" in frame:
        best = int(frame["val_loss"].idxmin())
        out |= {"val_loss": [round(float(v), 4) for v in frame["val_loss"]],
                "best_val_loss": round(float(frame["val_loss"].iloc[best]), 4),
                "best_val_loss_epoch": best + 1}
    return out


def _shown(path: str) -> str:
    """`path` relative to the project when it is inside it."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else path
