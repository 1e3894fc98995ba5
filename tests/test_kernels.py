"""chatbot.models.kernels.matmul: the product of a few rows, in blocks of columns, is the
product."""

from __future__ import annotations

import numpy as np
import pytest

from chatbot.models import kernels
from chatbot.models.kernels import matmul


@pytest.mark.parametrize("rows", [0, 1, 2, 3, 7, 12, 13, 40])
@pytest.mark.parametrize("small_product", [kernels.SMALL_PRODUCT, 1, 5000])
def test_matmul_is_the_product_however_it_is_split(rows, small_product, monkeypatch):
    monkeypatch.setattr(kernels, "SMALL_PRODUCT", small_product)
    rng = np.random.default_rng(rows)
    w = rng.standard_normal((384, 1000)).astype(np.float32)  # 1000: a last, narrower block
    x = rng.standard_normal((rows, 384)).astype(np.float32)
    got = matmul(x, w)
    assert got.shape == (rows, 1000) and got.dtype == np.float32
    np.testing.assert_allclose(got, x @ w, rtol=1e-5, atol=1e-4)


def test_matmul_keeps_leading_axes():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((384, 1536)).astype(np.float32)
    x = rng.standard_normal((2, 3, 384)).astype(np.float32)  # 6 rows: blocked
    np.testing.assert_allclose(matmul(x, w), x @ w, rtol=1e-5, atol=1e-4)


def test_only_a_few_rows_over_a_large_matrix_are_split(monkeypatch):
    calls = []
    real = np.matmul

    def counting(*args, **kwargs):
        calls.append(args[1].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(kernels.np, "matmul", counting)
    w = np.ones((384, 1536), np.float32)
    matmul(np.ones((2, 384), np.float32), w)  # 2 * 384 * 1536 > 100**3: in blocks
    assert len(calls) == 2 and sum(shape[1] for shape in calls) == 1536
    assert all(2 * 384 * shape[1] <= 100**3 for shape in calls)
    calls.clear()
    matmul(np.ones((1, 384), np.float32), w)  # one row: a matrix-vector product as it is
    matmul(np.ones((2, 384), np.float32), w[:, :512])  # within the small-matrix limit
    matmul(np.ones((64, 384), np.float32), w)  # many rows: packing pays for itself
    assert calls == []
