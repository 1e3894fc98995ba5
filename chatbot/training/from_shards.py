"""A prepared directory (chatbot.training.prepare_corpus) as the `Prepared` data of a run.

`chatbot train --data DIR` trains from the shards of DIR, streamed
(chatbot.training.stream_batches), instead of examples in memory. What the run keeps of the
text is bounded:
- the bot's memory of known replies: the prepared most frequent prompts (`memory.jsonl`);
- what the run measures (the stop rule's answer rates, the final evaluation): a seeded sample
  of those known pairs, and the prepared sample of validation pairs.

The settings that shaped the shards (tokenizer, max_len, vocabulary limits, the split) are the
prepared directory's, and replace the run's own, with a note for each one that differed.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from chatbot.config import RunConfig
from chatbot.errors import ChatbotError
from chatbot.rundir import VOCAB
from chatbot.text.tokenizer import load_tokenizer
from chatbot.text.vocab import Vocabulary
from chatbot.training.prepare import DataReport, Prepared, Split, noise_pool_size
from chatbot.training.prepare_corpus import MEASURE_SAMPLE, SAMPLES, read_pairs_file
from chatbot.training.shards import MEMORY_PAIRS, Manifest, read_manifest


def adopt_settings(config: RunConfig, manifest: Manifest, log=print) -> None:
    """`config` takes the prepared directory's text and data settings."""
    raw = manifest.raw
    if config.data.context_turns != 1:
        raise ChatbotError(f"{manifest.path} holds single turns; train it with --context-turns 1")
    for section, values in (("text", raw["text"]), ("data", raw["data"])):
        settings = getattr(config, section)
        for name, value in values.items():
            if getattr(settings, name) != value:
                log(f"{name} {value}, as {manifest.path} was prepared (not "
                    f"{getattr(settings, name)})")
                setattr(settings, name, value)
    if 0 < manifest.copies < config.train.noise_copies:
        log(f"noise_copies {manifest.copies}: {manifest.path} holds that many noisy copies of "
            f"each prompt (not {config.train.noise_copies}; prepare it with more to see more, "
            "or with none to have them drawn in the stream)")
        config.train.noise_copies = manifest.copies


def load_prepared(config: RunConfig, path: str | Path, vocab: Vocabulary | None = None,
                  log=print) -> Prepared:
    """The run's data from the prepared directory `path`; `config` adopts its settings. A
    resumed run passes its own `vocab`, which must be the directory's."""
    manifest = read_manifest(path)
    adopt_settings(config, manifest, log)
    own = Vocabulary.load(manifest.path / VOCAB)
    if vocab is not None and vocab.tokens != own.tokens:
        raise ChatbotError(f"{path}: its vocabulary is not the run's; was it prepared again "
                           "since the run started? Resume on the directory it started on")
    memory = read_pairs_file(manifest.path / MEMORY_PAIRS)
    described = report(manifest)
    if not manifest.copies and config.train.noise_copies:
        copies, pool = config.train.noise_copies, noise_pool_size(config)
        described = dataclasses.replace(described, streamed=(
            f"{described.streamed}; each pass adds {copies} of {pool} noisy copies of every "
            "training prompt, the next in turn, drawn in the stream (typing noise on the "
            "token ids: chatbot.training.stream_noise)"))
    return Prepared(*measured_pairs(manifest.path, config.train.seed, memory, manifest),
                    own, [], [],
                    described, load_tokenizer(config.text, manifest.path), None,
                    shards=manifest, memory_pairs=memory)


def measured_pairs(path: Path, seed: int, memory: list | None = None,
                   manifest: Manifest | None = None) -> tuple[list, list]:
    """What a run on the prepared directory `path` is measured on: a seeded sample of the
    pairs its memory knows that it trains on (not those of prompts seen on the validation side
    only, which the model never learns), and the prepared sample of validation pairs. `memory`
    and `manifest`: the directory's, if already read."""
    memory = memory if memory is not None else read_pairs_file(path / MEMORY_PAIRS)
    manifest = manifest or read_manifest(path)
    held_out = set(manifest.raw["memory"].get("validation_only", ()))  # line numbers
    memory = [pair for pair in memory if pair.line not in held_out]
    known = random.Random(seed).sample(memory, min(MEASURE_SAMPLE, len(memory)))
    return known, read_pairs_file(path / SAMPLES["validation"])


def report(manifest: Manifest) -> DataReport:
    """What `chatbot train` prints about the data, from the manifest."""
    raw = manifest.raw
    splits = [Split(raw["pairs"][s], raw["truncated"][s],
                    raw["prompt_tokens"][s] + raw["reply_tokens"][s],
                    raw["unknown_train_tokens"] if s == "train" else 0)
              for s in ("train", "validation")]
    memory = raw["memory"]
    note = (f"the bot's memory holds the {memory['kept']:,} most frequent of "
            f"{raw['distinct_prompts']:,} distinct prompts (at most {memory['cap']:,}; chatbot "
            "data prepare --memory-cap)" if memory["kept"] < raw["distinct_prompts"] else "")
    bad = [tuple(b[1:]) for b in raw["first_bad_lines"]]
    return dataclasses.replace(
        DataReport(str(manifest.path), bad, raw["duplicates"], raw["data"]["max_len"],
                   raw["vocab_size"], f"of {manifest.path}", *splits, noisy=raw["noisy"],
                   noisy_per_epoch=raw["noise_copies"]),
        streamed=f"streamed from {len(manifest.shards('train'))} training shards of "
                 f"{manifest.path}", memory_note=note)
