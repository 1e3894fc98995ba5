"""A run's data and its batches, whichever way it comes:

    a TSV or chat JSONL file    read into memory (chatbot.training.prepare), batched by
                                chatbot.training.batches.Batches
    plain text                  `chatbot pretrain`'s windows (chatbot.training.pretrain_data)
    a prepared directory        `chatbot data prepare`'s shards (chatbot.training.from_shards),
                                streamed by chatbot.training.stream_batches.ShardBatches
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from chatbot import rundir
from chatbot.config import RunConfig
from chatbot.data.pairs import LoadReport
from chatbot.errors import ChatbotError
from chatbot.models import arch_module
from chatbot.training.batches import Batches
from chatbot.training.from_shards import load_prepared
from chatbot.training.prepare import Prepared, noise_pool_size, prepare_data
from chatbot.training.pretrain_data import prepare_text
from chatbot.training.stream_batches import ShardBatches
from chatbot.training.stream_noise import StreamNoise

Log = Callable[[str], None]


def taught_files(out: Path, init_from: str | Path | None) -> list[Path]:
    """The taught pairs to fold into the run: those of the run it fine-tunes, and those of
    the run it replaces or resumes (create_run keeps them)."""
    runs = [Path(init_from)] if init_from is not None else []
    return [run / rundir.TAUGHT for run in dict.fromkeys([*runs, out])
            if (run / rundir.TAUGHT).is_file()]


def run_data(config: RunConfig, vocab, tokenizer, source, log: Log, taught: list[Path],
             read: LoadReport | list[str] | None = None) -> Prepared:
    """The examples of the run, reported; the model settings that follow from them filled in.
    `read`: the data file's pairs or the text's passages, read already (see `train`)."""
    if config.data.text:  # chatbot pretrain: plain text, a language model
        data = prepare_text(config, config.data.text, vocab, tokenizer, passages=read)
    elif Path(config.data.path).is_dir():  # chatbot data prepare's shards, streamed (an
        # unfinished directory is refused, with how to finish it: read_manifest)
        if taught:
            log(f"taught pairs are not folded into prepared data ({', '.join(map(str, taught))}"
                "); the bot still answers them from its memory of taught pairs")
        data = load_prepared(config, config.data.path, vocab, log)
    else:
        data = prepare_data(config, config.data.path, vocab, source, tokenizer, taught,
                            loaded=read)
    for line in data.report.lines():
        log(line)
    config.model.vocab_size = len(data.vocab)
    fit_to_data = getattr(arch_module(config.model.arch), "fit_to_data", None)
    if fit_to_data is not None:  # settings that follow from the data (transformer: positions)
        fit_to_data(config)
    return data


def run_batches(config: RunConfig, data: Prepared, done: int
                ) -> tuple[Batches | ShardBatches, Batches | ShardBatches | None]:
    """The training and validation batches of a run that has done `done` epochs."""
    options = dict(batch_size=config.train.batch_size,
                   bucket_by_length=config.train.bucket_by_length, seed=config.train.seed)
    if data.shards is not None:  # streamed from the shards of prepared data
        encode = arch_module(config.model.arch).encode_example
        noise = StreamNoise(data.vocab, data.tokenizer.tokenize, config.data.max_len,
                            typos=config.text.tokenizer == "word")
        train_data = ShardBatches(data.shards, "train", data.vocab, encode, epoch=done,
                                  steps_per_epoch=config.train.steps_per_epoch,
                                  noise_copies=config.train.noise_copies, noise=noise,
                                  noise_pool=noise_pool_size(config), **options)
        has_val = data.shards.pairs["validation"]
        val_data = ShardBatches(data.shards, "validation", data.vocab, encode,
                                **options) if has_val else None
        return train_data, val_data
    if config.train.steps_per_epoch:
        raise ChatbotError("--steps-per-epoch applies to prepared data (chatbot data prepare); "
                           f"an epoch of {config.data.path} is all of its pairs")
    # epoch=done: each epoch's shuffle depends on (seed, epoch) only, so a resumed run gets
    # the batches the uninterrupted run had.
    train_data = Batches(data.train_examples, epoch=done, rotation=data.rotation, **options)
    val_data = Batches(data.val_examples, shuffle=False, **options) if data.val_examples else None
    return train_data, val_data
