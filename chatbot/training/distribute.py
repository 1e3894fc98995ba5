"""Training on more than one device through TensorFlow's own distribution engine.

    default      one device (TensorFlow still uses every CPU core for each op)
    mirrored     tf.distribute.MirroredStrategy: every GPU of this machine, each with a copy of
                 the model, gradients summed across them; on a machine without GPUs the CPU is
                 split into `logical_cpus` logical devices (useful to try it, not faster)
    multiworker  tf.distribute.MultiWorkerMirroredStrategy: the same across several processes
                 or hosts, described by the TF_CONFIG environment variable; each worker reads
                 its own share of the batches (Batches.distributed) and the chief (worker 0, or
                 the task of type "chief") alone checks and writes the run directory; a refusal
                 of the chief reaches every worker (refuse_together).

Training runs through chatbot.training.loop rather than model.fit(), which fails under
MultiWorkerMirroredStrategy in Keras 3.15 (keras-team/keras#20585).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from chatbot.errors import ChatbotError

STRATEGIES = ("default", "mirrored", "multiworker")


def make_strategy(name: str, logical_cpus: int = 2):
    """The tf.distribute strategy for `name`; call it before any other TensorFlow work."""
    if name not in STRATEGIES:
        raise ChatbotError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")
    if name == "multiworker":
        _check_tf_config(os.environ.get("TF_CONFIG"))
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if not tf.config.list_physical_devices("GPU"):
            _split_cpu(tf, logical_cpus)
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy) -> bool:
    """Whether this process writes files: always, unless it is a worker other than the chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and (
        "chief" not in resolver.cluster_spec().as_dict())


def refuse_together(strategy, check: Callable[[], None]) -> None:
    """Runs `check` on the chief alone; if it raises, every worker raises a ChatbotError with
    the chief's message (the chief its own exception).

    Only the chief looks at the run directory, but a worker that is not told of its refusal
    waits forever in the first collective operation of training. So every worker calls this,
    at the same point and before any other collective: the chief's outcome (its message, or
    none) reaches all of them in one collective operation of its own.
    """
    if not _several_workers(strategy):
        check()
        return
    message, failure = "", None
    if is_chief(strategy):
        try:
            check()
        except ChatbotError as exc:
            message, failure = str(exc), exc
        except Exception as exc:  # e.g. an OSError: the others must not wait for it either
            message, failure = f"the chief failed: {type(exc).__name__}: {exc}", exc
    message = _from_chief(strategy, message)
    if failure is not None:
        raise failure
    if message:
        raise ChatbotError(message)


MESSAGE_BYTES = 4096  # the longest message the chief can send to the workers, in UTF-8


def _several_workers(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is not None and bool(resolver.cluster_spec().as_dict())


def _from_chief(strategy, message: str) -> str:
    """The chief's `message` on every worker (each passes its own; only the chief's counts)."""
    import numpy as np
    import tensorflow as tf

    local = len(strategy.extended.worker_devices)
    codes = np.zeros(MESSAGE_BYTES, np.int32)  # the UTF-8 bytes, then zeros
    if is_chief(strategy):
        encoded = message.encode()[:MESSAGE_BYTES]
        codes[: len(encoded)] = np.frombuffer(encoded, np.uint8)
    # Summed over every device of every worker: each of the chief's `local` devices adds the
    # message, the other workers' add zeros (all workers have as many devices: the strategy
    # requires it). A sum is what a collective of every strategy can do.
    shares = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(codes))
    total = strategy.reduce("SUM", shares, axis=None).numpy() // local
    return bytes(np.trim_zeros(total, "b").astype(np.uint8)).decode(errors="replace")


TF_CONFIG_EXAMPLE = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}\'')


def _check_tf_config(text: str | None) -> None:
    """Refuses a missing or malformed TF_CONFIG before TensorFlow reads it."""
    fix = f"set it on every worker, with its own index, e.g. {TF_CONFIG_EXAMPLE}"
    if not text:
        raise ChatbotError(f"--strategy multiworker needs the TF_CONFIG environment variable "
                           f"describing the cluster; {fix}")
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task_type, index = config["task"]["type"], config["task"]["index"]
    except (ValueError, KeyError, TypeError):
        raise ChatbotError(f"TF_CONFIG is not valid: it needs cluster.worker (a list of "
                           f"host:port) and task.type and task.index; {fix}") from None
    tasks = config["cluster"].get(task_type)
    if not isinstance(workers, list) or not workers or not isinstance(tasks, list) or not (
            isinstance(index, int) and 0 <= index < len(tasks)):
        raise ChatbotError(f"TF_CONFIG: task {task_type!r} index {index!r} is not in the "
                           f"cluster {config['cluster']}; {fix}")


def _split_cpu(tf, count: int) -> None:
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError as exc:  # devices already initialized: keep what exists
        raise ChatbotError(f"cannot split the CPU into {count} devices now ({exc})") from None
