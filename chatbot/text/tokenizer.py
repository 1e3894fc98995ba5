"""Which tokenizer a run reads text with: its `text` settings, and the one place that picks
between words (chatbot.text.words) and sentencepiece pieces (chatbot.text.subword)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from chatbot.errors import ChatbotError
from chatbot.fields import setting
from chatbot.text.words import TextTokenizer, Tokenizer

# "word": chatbot.text.words.Tokenizer; "sentencepiece": chatbot.text.subword.SubwordTokenizer.
TOKENIZERS = ("word", "sentencepiece")
SUBWORD_MODELS = ("unigram", "bpe")  # sentencepiece's algorithms: --subword-model NAME


@dataclass
class TextConfig:
    """How a run reads text: the `text` section of its config.json (chatbot.config)."""

    lowercase: bool = setting(True, "fold case before tokenizing: \"Hello\" and \"hello\" "
                                    "become one token")
    tokenizer: str = setting("word", "words and CJK characters, or subword pieces learned from "
                                     "the training text", choices=TOKENIZERS, flag=True)
    subword_vocab: int = setting(4000, "sentencepiece: most pieces, the 256 byte pieces "
                                       "included", low=1, flag=True)
    subword_model: str = setting("unigram", "sentencepiece: how pieces are learned",
                                 choices=SUBWORD_MODELS, flag=True)


def train_tokenizer(config: TextConfig, texts: Iterable[str]) -> TextTokenizer:
    """The tokenizer `config.tokenizer` names, for a new run: sentencepiece learns its pieces
    from `texts` (the training prompts and replies); the word tokenizer needs none."""
    if config.tokenizer == "sentencepiece":
        if config.subword_model not in SUBWORD_MODELS:
            raise ChatbotError(f"subword_model is {config.subword_model!r}; choose one of: "
                               f"{', '.join(SUBWORD_MODELS)}")
        from chatbot.text.subword import train_subword  # sentencepiece, only when it is used

        return train_subword(texts, config.subword_model, config.subword_vocab, config.lowercase)
    return Tokenizer(lowercase=config.lowercase)


def load_tokenizer(config: TextConfig, run_dir: str | Path | None = None) -> TextTokenizer:
    """The tokenizer of a run whose settings are `config`: sentencepiece reads its model from
    `run_dir`; the word tokenizer needs no file."""
    if config.tokenizer == "sentencepiece":
        from chatbot.rundir import TOKENIZER
        from chatbot.text.subword import SubwordTokenizer

        if run_dir is None:
            raise ValueError("a sentencepiece tokenizer is read from its run directory")
        return SubwordTokenizer.load(Path(run_dir) / TOKENIZER, config.lowercase)
    return Tokenizer(lowercase=config.lowercase)
