"""Bucketed batches: no pair lost or repeated, no more padding than needed, a new order every
epoch, and the tf.data pipeline yields exactly the batches of the NumPy one."""

from __future__ import annotations

import random

import numpy as np
import pytest

from chatbot.training.batches import Batches, Rotation


def examples(n: int, inputs: int = 1, seed: int = 0):
    """Example k: its inputs and target carry k, so every row can be traced back."""
    rng = random.Random(seed)
    out = []
    for k in range(1, n + 1):
        target = [k] * rng.randint(1, 17)
        out.append((tuple([k] * rng.randint(1, 9) for _ in range(inputs)), target))
    return out


def row_ids(batch) -> list[int]:
    _, target = batch
    return [int(row[0]) for row in target]


def test_an_epoch_holds_every_pair_exactly_once_with_its_own_tokens():
    data = examples(103)
    batches = list(Batches(data, batch_size=8, seed=1))
    assert sorted(k for b in batches for k in row_ids(b)) == list(range(1, 104))
    for tokens, target in batches:
        for x, y in zip(tokens, target):
            k = int(y[0])
            assert list(x[x != 0]) == data[k - 1][0][0] and list(y[y != 0]) == data[k - 1][1]


@pytest.mark.parametrize("multiple", [1, 8])
def test_each_batch_is_padded_to_its_own_longest_row_only(multiple):
    data = examples(103)
    for tokens, target in Batches(data, batch_size=8, seed=1, pad_multiple=multiple):
        longest = max(len(data[int(k) - 1][1]) for k in target[:, 0])
        assert target.shape[1] == -(-longest // multiple) * multiple
        longest_input = max(len(data[int(k) - 1][0][0]) for k in target[:, 0])
        assert tokens.shape[1] == -(-longest_input // multiple) * multiple


def padding(batches) -> int:
    return sum(int(np.count_nonzero(target == 0)) for _, target in batches)


def test_bucketing_pads_as_little_as_batches_of_that_size_can():
    data = examples(200)
    bucketed = padding(Batches(data, batch_size=8, seed=1))
    # The least padding for batches of 8: sort by length and cut (what bucketing must reach).
    lengths = sorted(len(target) for _, target in data)
    least = sum(max(chunk) * len(chunk) - sum(chunk)
                for chunk in (lengths[i: i + 8] for i in range(0, len(lengths), 8)))
    assert bucketed == least
    assert padding(Batches(data, batch_size=8, seed=1, bucket_by_length=False)) > 3 * least


def test_every_epoch_has_a_new_order_of_the_same_pairs():
    batches = Batches(examples(64), batch_size=8, seed=2)
    first, second = ([row_ids(b) for b in batches] for _ in range(2))
    assert first != second
    assert sorted(sum(first, [])) == sorted(sum(second, [])) == list(range(1, 65))


@pytest.mark.parametrize("inputs, multiple, shards, devices", [
    (1, 1, 1, 1), (2, 1, 1, 1), (1, 8, 1, 1), (2, 1, 2, 2), (1, 1, 3, 1)])
def test_the_tf_data_pipeline_yields_the_numpy_batches(inputs, multiple, shards, devices):
    data = examples(61, inputs)
    for shard in range(shards):
        numpy_batches = list(Batches(data, 4, seed=5, pad_multiple=multiple).iterate(
            shard, shards, devices))
        dataset = Batches(data, 4, seed=5, pad_multiple=multiple).dataset(shard, shards, devices)
        tf_batches = list(dataset.as_numpy_iterator())
        assert len(tf_batches) == len(numpy_batches) == dataset.cardinality()
        for (x_np, y_np), (x_tf, y_tf) in zip(numpy_batches, tf_batches):
            x_np, x_tf = (x if isinstance(x, tuple) else (x,) for x in (x_np, x_tf))
            assert all(np.array_equal(a, b) and b.dtype == np.int32 for a, b in zip(x_np, x_tf))
            assert np.array_equal(y_np, y_tf) and y_tf.dtype == np.int32


def test_the_repeated_pipeline_gives_one_epoch_after_another_each_in_a_new_order():
    data = examples(61)
    planned = Batches(data, 4, seed=5)
    numpy_epochs = [list(planned.iterate()) for _ in range(3)]  # three epochs of one RNG
    repeated = Batches(data, 4, seed=5).dataset(repeat=True).as_numpy_iterator()
    tf_epochs = [[next(repeated) for _ in range(len(planned))] for _ in range(3)]
    for numpy_batches, tf_batches in zip(numpy_epochs, tf_epochs):
        assert len(tf_batches) == len(numpy_batches)
        assert all(np.array_equal(x_np, x_tf) and np.array_equal(y_np, y_tf)
                   for (x_np, y_np), (x_tf, y_tf) in zip(numpy_batches, tf_batches))
        assert sorted(sum((row_ids(b) for b in tf_batches), [])) == list(range(1, 62))
    assert [row_ids(b) for b in tf_epochs[0]] != [row_ids(b) for b in tf_epochs[1]]


def test_validation_batches_keep_their_order():
    batches = Batches(examples(30), batch_size=4, shuffle=False, bucket_by_length=False)
    assert [row_ids(b) for b in batches][0] == [1, 2, 3, 4]
    assert [row_ids(b) for b in batches] == [row_ids(b) for b in batches]


# (pairs, batch size, workers, devices per worker): fewer batches than devices, far fewer
# (1 on 3, 3 on 8, 1 pair on 8), exact multiples, and one batch more than a multiple.
DEVICE_CASES = [(3, 4, 3, 1), (3, 4, 1, 3), (12, 4, 1, 8), (12, 4, 2, 4), (1, 4, 8, 1),
                (1, 4, 2, 4), (16, 4, 2, 2), (32, 4, 1, 4), (13, 4, 3, 1), (13, 4, 1, 1)]


@pytest.mark.parametrize("pairs, size, shards, multiple", DEVICE_CASES)
def test_every_device_gets_a_batch_at_every_step_whatever_the_counts(pairs, size, shards,
                                                                     multiple):
    batches, devices = Batches(examples(pairs), size, seed=1), shards * multiple
    plan = batches.plan(devices)
    assert len(plan) == batches.steps(devices)
    assert all(len(step) == devices and all(step) for step in plan)  # one non-empty batch each
    planned = [tuple(rows) for step in plan for rows in step]
    assert len(set(planned)) == len(batches)  # every batch of the epoch, the others repeats
    assert sorted(i for rows in set(planned) for i in rows) == list(range(pairs))


@pytest.mark.parametrize("pairs, size, shards, multiple", DEVICE_CASES)
def test_each_worker_yields_the_steps_it_announces(pairs, size, shards, multiple):
    def batches():  # every worker makes its own, with the same seed
        return Batches(examples(pairs), size, seed=1)

    steps = batches().steps(shards * multiple)
    for shard in range(shards):
        planned = batches()
        numpy_epochs = [[row_ids(b) for b in planned.iterate(shard, shards, multiple)]
                        for _ in range(2)]
        assert [len(epoch) for epoch in numpy_epochs] == [steps * multiple] * 2
        dataset = batches().dataset(shard, shards, multiple)
        assert dataset.cardinality() == len(list(dataset)) == steps * multiple
        # Repeated, the epochs follow each other at the announced boundaries: a wrong count
        # would fail tf.data's cardinality check or shift the second epoch.
        repeated = batches().dataset(shard, shards, multiple, repeat=True).as_numpy_iterator()
        tf_epochs = [[row_ids(next(repeated)) for _ in range(steps * multiple)]
                     for _ in range(2)]
        assert tf_epochs == numpy_epochs
        next(repeated)  # and a third epoch begins


@pytest.mark.parametrize("pairs, size, shards, multiple", DEVICE_CASES)
def test_validation_across_devices_scores_every_row_once(pairs, size, shards, multiple):
    # Steps are filled with a row of padding (no scored token), never with repeated rows.
    def batches():
        return Batches(examples(pairs), size, shuffle=False)

    steps = batches().steps(shards * multiple)
    scored = []
    for shard in range(shards):
        numpy = list(batches().iterate(shard, shards, multiple))
        tf = list(batches().dataset(shard, shards, multiple).as_numpy_iterator())
        assert len(numpy) == len(tf) == steps * multiple
        for (_, y_np), (_, y_tf) in zip(numpy, tf):
            assert np.array_equal(y_np, y_tf)
            scored += [int(row[0]) for row in y_np if row.any()]
    assert sorted(scored) == list(range(1, pairs + 1))


def test_a_rotation_gives_every_epoch_the_originals_and_the_next_copies_of_each():
    # Example k of 1..5 is an original; 6.. are its copies, 3 of each in a row.
    data = examples(5 * 4)
    batches = Batches(data, batch_size=4, seed=2, rotation=Rotation(5, 3, 1))
    assert len(batches) == 3  # 10 rows of 4: originals and one copy of each
    seen = []
    for _ in range(4):
        ids = sorted(k for b in batches.iterate() for k in row_ids(b))
        assert ids[:5] == [1, 2, 3, 4, 5] and len(ids) == 10
        seen.append(ids[5:])
    # Copy c of original i is example 6 + 3 * (i - 1) + c: each epoch takes the next c,
    # so after 3 epochs every copy was seen once, and the 4th starts again.
    assert seen[:3] == [[6 + 3 * i + c for i in range(5)] for c in range(3)]
    assert seen[3] == seen[0]


def test_a_rotation_must_fit_its_examples():
    with pytest.raises(ValueError, match="needs 5 examples and 3 copies of each"):
        Batches(examples(19), 4, rotation=Rotation(5, 3, 1))
    with pytest.raises(ValueError, match="per_epoch must be between 0 and copies"):
        Rotation(5, 3, 4)
