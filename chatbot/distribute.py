"""Training on more than one device through TensorFlow's own distribution engine.

    default      one device (TensorFlow still uses every CPU core for each op)
    mirrored     tf.distribute.MirroredStrategy: every GPU of this machine, each with a copy of
                 the model, gradients summed across them; on a machine without GPUs the CPU is
                 split into `logical_cpus` logical devices (useful to try it, not faster)
    multiworker  tf.distribute.MultiWorkerMirroredStrategy: the same across several processes
                 or hosts, described by the TF_CONFIG environment variable; each worker reads
                 its own share of the batches (Batches.distributed) and the chief (worker 0, or
                 the task of type "chief") alone writes the run directory.

Training runs through chatbot.loop rather than model.fit(), which fails under
MultiWorkerMirroredStrategy in Keras 3.15 (keras-team/keras#20585).
"""

from __future__ import annotations

import json
import os

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
