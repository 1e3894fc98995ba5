"""A prepared corpus on disk: encoded pairs in TFRecord shards, and the manifest that lists them.

    DIR/manifest.json          written last: a directory without it is not (yet) prepared
    DIR/vocab.json             the vocabulary (chatbot.text.vocab)
    DIR/remap.npy              word tokenizer: the shards' token numbers -> vocabulary indices
    DIR/tokenizer.model        sentencepiece: its model (the shards hold vocabulary indices)
    DIR/memory.jsonl             the prompts the bot will know by heart, with their replies
    DIR/train-00000.tfrecord   ... the training examples, `shard_size` per shard
    DIR/validation-00000.tfrecord ...

Each record is one example as little-endian int32: [copy, prompt length, prompt..., reply...].
`copy` is 0 for a pair as written and 1..N for the N noisy copies of its prompt (typing noise),
which `ShardBatches` takes one pass at a time, the next in turn. Records hold token numbers
that `remap` turns into vocabulary indices, so the shards are written in one pass, before the
vocabulary is known. The model's inputs (start, separator and end tokens) are laid out in the
tf.data pipeline, checked against the architecture's own `encode_example`.

`ShardWriter` writes each shard under a temporary name, then renames it, so that a shard with
its final name is complete; the manifest records the SHA-256 of every shard, and `read_manifest`
checks that each is there with its size (`verify` reads them all and checks their digests).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np

from chatbot.errors import ChatbotError
from chatbot.rundir import atomic_write_text, read_json

MANIFEST = "manifest.json"
REMAP = "remap.npy"
MEMORY_PAIRS = "memory.jsonl"
SPLITS = ("train", "validation")
FORMAT = 1  # bump when the records or the manifest change meaning


def is_prepared(path: str | Path) -> bool:
    """Whether `path` is a directory `chatbot data prepare` finished."""
    return Path(path).is_dir() and (Path(path) / MANIFEST).is_file()


def encode_record(copy: int, prompt: list[int], reply: list[int]) -> bytes:
    """Little-endian int32s, as decode_record reads them: copy, len(prompt), prompt, reply."""
    return record_of(copy, len(prompt), struct.pack(f"<{len(prompt) + len(reply)}i", *prompt,
                                                    *reply))


def record_of(copy: int, prompt_length: int, ids: bytes) -> bytes:
    """`encode_record` of a prompt and reply whose numbers are already little-endian int32s,
    `ids`, the prompt's `prompt_length` first."""
    return struct.pack("<2i", copy, prompt_length) + ids


def decode_record(data: bytes) -> tuple[int, list[int], list[int]]:
    values = np.frombuffer(data, dtype="<i4").tolist()
    copy, length = values[0], values[1]
    return copy, values[2: 2 + length], values[2 + length:]


def tfrecord(data: bytes) -> bytes:
    """`data` framed as one TFRecord: its length, the length's masked CRC-32C, the data, the
    data's masked CRC-32C (what tf.io.TFRecordWriter writes, without TensorFlow)."""
    length = struct.pack("<Q", len(data))
    return b"".join((length, _masked_crc(length), data, _masked_crc(data)))


def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


class ShardWriter:
    """Records of one split into numbered shards of `size` records each."""

    def __init__(self, out: Path, split: str, size: int):
        self.out, self.split, self.size = out, split, size
        self.shards: list[dict[str, Any]] = []
        self.file, self.count, self.tmp = None, 0, None
        self.digest = hashlib.sha256()

    def write(self, record: bytes) -> None:
        if self.file is None:
            name = f"{self.split}-{len(self.shards):05d}.tfrecord"
            self.tmp = self.out / f".{name}.tmp"
            self.file = open(self.tmp, "wb")
            self.digest = hashlib.sha256()
        framed = tfrecord(record)
        self.file.write(framed)
        self.digest.update(framed)
        self.count += 1
        if self.count == self.size:
            self.close()

    def close(self) -> None:
        """Ends the shard being written: flushed, synced, renamed, its digest recorded."""
        if self.file is None:
            return
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        final = self.out / self.tmp.name.removeprefix(".").removesuffix(".tmp")
        os.replace(self.tmp, final)
        self.shards.append({"name": final.name, "split": self.split, "examples": self.count,
                            "bytes": final.stat().st_size, "sha256": self.digest.hexdigest()})
        self.file, self.count = None, 0


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """What `chatbot data prepare` wrote (see the module doc)."""

    path: Path
    raw: dict[str, Any]

    def shards(self, split: str) -> list[Path]:
        return [self.path / s["name"] for s in self.raw["shards"] if s["split"] == split]

    def examples(self, split: str) -> int:
        """Records of the split, noisy copies included."""
        return sum(s["examples"] for s in self.raw["shards"] if s["split"] == split)

    @property
    def pairs(self) -> dict[str, int]:
        return self.raw["pairs"]

    @property
    def copies(self) -> int:
        """Noisy copies of each training prompt in the shards."""
        return self.raw["noise_copies"]


def write_manifest(out: Path, raw: dict[str, Any]) -> None:
    atomic_write_text(out / MANIFEST, json.dumps({"format": FORMAT, **raw}, indent=1,
                                                 ensure_ascii=False) + "\n")


def read_manifest(path: str | Path, verify: bool = False) -> Manifest:
    """The manifest of a prepared directory, every shard of it that is there checked to have
    its size (and with `verify`, its SHA-256). A shard may be missing: one of several workers
    holds only its own (`check_present` names a missing one when a worker needs it)."""
    path = Path(path)
    if not is_prepared(path):
        raise ChatbotError(f"{path}: no {MANIFEST}; prepare it with `chatbot data prepare "
                           f"FILE... --out {path}` (an interrupted prepare leaves none: run it "
                           "again)")
    raw = read_json(path / MANIFEST)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ChatbotError(f"{path / MANIFEST}: not a manifest of format {FORMAT}; prepare the "
                           "data again with this version")
    for shard in raw["shards"]:
        file = path / shard["name"]
        if not file.is_file():
            continue
        if file.stat().st_size != shard["bytes"]:
            raise ChatbotError(f"{file}: not the size the manifest records; the prepared data "
                               "is damaged: prepare it again")
        if verify and file_digest(file) != shard["sha256"]:
            raise ChatbotError(f"{file}: its SHA-256 is not the one the manifest records; the "
                               "prepared data is damaged: prepare it again")
    return Manifest(path, raw)


def check_present(files: list[str], who: str) -> None:
    """Refuses, naming the first, shards that `who` reads and that are not there."""
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise ChatbotError(f"{missing[0]}: missing ({len(missing)} of the {len(files)} shards "
                           f"{who} reads); copy them from where the data was prepared, or "
                           "prepare it again")


def read_remap(manifest: Manifest) -> np.ndarray | None:
    """The shards' token numbers -> vocabulary indices (None: the shards hold indices)."""
    file = manifest.path / REMAP
    return np.load(file) if file.is_file() else None
