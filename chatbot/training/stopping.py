"""Why a training run stops, and what it watches to decide: the monitored quantity (with what
stands in for it when the run cannot measure it) and the reason it stopped, for the log and
metrics.json.

The rule itself lives in the callbacks (chatbot.training.callbacks): EarlyStopping ends a run
once the monitor reaches train.stop_at or stops improving, TimeBudget once --max-minutes are
spent, and the loop once the epochs are done. None of the default ones reads the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chatbot.config import MEASURED, RunConfig
from chatbot.errors import ChatbotError
from chatbot.training.callbacks import EarlyStopping, Monitor, TimeBudget

Log = Callable[[str], None]


def monitor_of(config: RunConfig, has_val: bool, measured: set[str], log: Log) -> Monitor:
    """The quantity the checkpoint and early stopping watch: config.train.monitor, or what
    stands in for it when the run cannot measure it."""
    name = config.train.monitor
    try:
        monitor = Monitor(name)
    except ValueError as exc:
        raise ChatbotError(str(exc)) from None
    if name.startswith("val_") and not has_val:
        log(f"no validation pairs (val_fraction={config.data.val_fraction}): monitoring "
            f"{name[4:]} instead of {name}")
        monitor = Monitor(name[4:])
    # Several workers: the chief alone measures, and the others must stop when it does.
    several = config.train.strategy == "multiworker"
    if name in MEASURED and (name not in measured or several):
        why = ("with several workers" if several else "this run measures no answer rates"
               + (" (plain text)" if config.data.text else ""))
        log(f"{why}: monitoring loss instead of {name}")
        monitor = Monitor("loss")
    return monitor


def measured_by(made: list) -> set[str]:
    """The log entries the caller's callbacks add (AnswerRates: `measures`)."""
    return {name for callback in made for name in getattr(callback, "measures", ())}


@dataclass(frozen=True)
class Stopped:
    """Why training stopped after `epoch` (1-based): `reason` is one of "target" (the monitor
    reached train.stop_at), "patience" (it stopped improving), "time" (--max-minutes) or
    "epochs" (all of them trained); `why` says it in words."""

    reason: str
    epoch: int
    why: str


def stopped_by(early_stop: EarlyStopping, budget: TimeBudget | None, epochs: int,
             config: RunConfig) -> Stopped:
    name, best = early_stop.monitor.name, early_stop.best
    if early_stop.reached:
        return Stopped("target", early_stop.stopped_epoch,
                       f"stopped after epoch {early_stop.stopped_epoch}: {name} {best:.3f} "
                       f"reached the target {config.train.stop_at:g}")
    if early_stop.stopped_epoch:
        return Stopped("patience", early_stop.stopped_epoch,
                       f"stopped early after epoch {early_stop.stopped_epoch}: {name} has not "
                       f"improved for {config.train.patience} epochs")
    if budget is not None and budget.stopped_epoch:
        return Stopped("time", budget.stopped_epoch,
                       f"stopped after epoch {budget.stopped_epoch}: the time budget of "
                       f"{config.train.max_minutes:g} minutes is spent")
    return Stopped("epochs", epochs, f"stopped after epoch {epochs}: the last of "
                                     f"{config.train.epochs} (--epochs)")
