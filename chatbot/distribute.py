"""Training on more than one device through TensorFlow's own distribution engine.

    default      one device (TensorFlow still uses every CPU core for each op)
    mirrored     tf.distribute.MirroredStrategy: every GPU of this machine, each with a copy of
                 the model, gradients summed across them; on a machine without GPUs the CPU is
                 split into `logical_cpus` logical devices (useful to try it, not faster)
    multiworker  tf.distribute.MultiWorkerMirroredStrategy: the same across several processes
                 or hosts, described by the TF_CONFIG environment variable. Refused for now:
                 Keras 3's fit() fails under this strategy (see below). The data sharding it
                 would need (Batches.distributed, one shard per worker) is in place and used
                 by `mirrored`.
"""

from __future__ import annotations

from chatbot.errors import ChatbotError

STRATEGIES = ("default", "mirrored", "multiworker")


def make_strategy(name: str, logical_cpus: int = 2):
    """The tf.distribute strategy for `name`; call it before any other TensorFlow work."""
    if name not in STRATEGIES:
        raise ChatbotError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if not tf.config.list_physical_devices("GPU"):
            _split_cpu(tf, logical_cpus)
        return tf.distribute.MirroredStrategy()
    # Keras 3.15's fit() builds the model by reducing the first distributed batch with
    # strategy.reduce(), which MultiWorkerMirroredStrategy cannot do for an (inputs, target)
    # pair: fit fails before the first step (keras-team/keras#20585, open upstream).
    raise ChatbotError(
        "--strategy multiworker is not available yet: Keras 3's fit() fails under "
        "tf.distribute.MultiWorkerMirroredStrategy (keras-team/keras issue 20585); use "
        "--strategy mirrored to train on every GPU of one machine"
    )


def _split_cpu(tf, count: int) -> None:
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError as exc:  # devices already initialized: keep what exists
        raise ChatbotError(f"cannot split the CPU into {count} devices now ({exc})") from None
