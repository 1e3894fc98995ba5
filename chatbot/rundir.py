"""The run directory: everything needed to chat, and the check that it is all there."""

from __future__ import annotations

from pathlib import Path

from chatbot.errors import ChatbotError

CONFIG = "config.json"
VOCAB = "vocab.json"
MODEL = "model.keras"
HISTORY = "history.csv"
METRICS = "metrics.json"
BACKUP = ".backup"  # the last finished epoch while training runs; removed when it ends


def check_run_dir(path: str | Path) -> Path:
    """Returns the path if it holds a complete run; else says what is missing and what to do."""
    path = Path(path)
    if not path.is_dir():
        hint = "run 'make train'" if path.name == "default" else (
            f"train one with 'chatbot train --data FILE --out {path}'")
        raise ChatbotError(f"{path}: no such model directory; {hint}")
    missing = [name for name in (CONFIG, VOCAB, MODEL) if not (path / name).is_file()]
    if missing and (path / BACKUP).is_dir():
        raise ChatbotError(
            f"{path}: training was interrupted before its first epoch finished (missing "
            f"{', '.join(missing)}); continue it with 'chatbot train --resume {path}'"
        )
    if missing:
        raise ChatbotError(
            f"{path}: incomplete run directory, missing {', '.join(missing)}; training may not "
            f"have finished its first epoch. Train again with 'chatbot train --out {path}'"
        )
    return path
