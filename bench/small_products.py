"""What multiplying a few rows in blocks of columns (chatbot.models.kernels.matmul) saves:

    .venv/bin/python bench/small_products.py -o bench/small_products.json   (make bench-products)

A decoding step multiplies one row per reply in the batch by each weight matrix. OpenBLAS
multiplies one row without copying the matrix (a matrix-vector product), and small products
(rows * inner * columns <= 100**3) with an unpacked kernel; any other product first copies the
whole weight matrix into packed panels. So a step of a small batch can cost several times one
row's. `matmul` splits such products into blocks of columns that stay under the limit.

Figures, one BLAS thread (as `chatbot serve` decodes), milliseconds, the two ways alternated
in the same run:

- `products`: x @ w and matmul(x, w) for the default model's weight shapes (the LSTM's
  recurrent kernel and output layer, and a transformer block's) and 1 to 64 rows; best of 5
  repetitions of 200 products each;
- `reply_batch`: `Bot.reply_batch` of the default run on training prompts, milliseconds of
  CPU per reply in batches of 1 to 16, with the blocks and without them (BLOCKED_ROWS empty);
  the median of 3 alternated rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from harness import ROOT, load_average, machine, write_results  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits

from chatbot.models import kernels  # noqa: E402

SHAPES = {"lstm_recurrent_384x1536": (384, 1536), "lstm_output_384x4576": (384, 4576),
          "transformer_ff_256x1024": (256, 1024), "transformer_qkv_256x768": (256, 768)}
ROWS = (1, 2, 3, 4, 8, 12, 16, 32, 64)
BATCHES = (1, 2, 4, 8, 16)
PROMPTS = 256


def best_ms(product, count: int = 200, repeats: int = 5) -> float:
    product()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(count):
            product()
        best = min(best, (time.perf_counter() - start) / count)
    return round(1000 * best, 4)


def products() -> dict:
    rng = np.random.default_rng(0)
    figures = {}
    for name, (inner, columns) in SHAPES.items():
        w = rng.standard_normal((inner, columns)).astype(np.float32)
        figures[name] = {}
        for rows in ROWS:
            x = rng.standard_normal((rows, inner)).astype(np.float32)
            plain = best_ms(lambda x=x, w=w: x @ w)
            blocked = best_ms(lambda x=x, w=w: kernels.matmul(x, w))
            figures[name][f"rows_{rows}"] = {"plain": plain, "blocked": blocked,
                                             "speedup": round(plain / blocked, 2)}
    return figures


def reply_batch(run: Path, texts: list[str]) -> dict:
    from chatbot.decoding.bot import Bot

    bot = Bot.load(run)
    for text in texts[:20]:  # warm-up
        bot.reply(text)
    blocked_rows = kernels.BLOCKED_ROWS
    cpu: dict[str, dict[int, list[float]]] = {"plain": {}, "blocked": {}}
    for _ in range(3):
        for way in ("plain", "blocked"):
            kernels.BLOCKED_ROWS = range(0) if way == "plain" else blocked_rows
            for batch in BATCHES:
                start = time.process_time()
                for i in range(0, len(texts), batch):
                    bot.reply_batch(texts[i:i + batch])
                cpu[way].setdefault(batch, []).append(
                    1000 * (time.process_time() - start) / len(texts))
    kernels.BLOCKED_ROWS = blocked_rows
    figures = {}
    for batch in BATCHES:
        plain, blocked = (statistics.median(cpu[way][batch]) for way in ("plain", "blocked"))
        figures[f"batch_{batch}"] = {"plain": round(plain, 2), "blocked": round(blocked, 2),
                                     "speedup": round(plain / blocked, 2)}
    return figures


def main() -> None:
    from serve import DATA, model_run, prompts  # (bench/ is on sys.path: this script's folder)

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--out", default="bench/small_products.json")
    parser.add_argument("--model", default=None, help="run directory (default: as bench/serve)")
    args = parser.parse_args()
    run = Path(args.model) if args.model else model_run()
    load_start = load_average()
    with threadpool_limits(1, user_api="blas"):
        blas = [{k: info.get(k) for k in ("internal_api", "version", "architecture")}
                for info in threadpool_info() if info.get("user_api") == "blas"]
        results = {
            "what": "float32 products of a few rows by a weight matrix, as numpy's x @ w and "
                    "in blocks of columns (chatbot.models.kernels.matmul); one BLAS thread",
            "blas": blas,
            "small_product_limit": kernels.SMALL_PRODUCT,
            "blocked_rows": [kernels.BLOCKED_ROWS.start, kernels.BLOCKED_ROWS.stop - 1],
            "products_ms": products(),
            "model": str(run.relative_to(ROOT) if run.is_relative_to(ROOT) else run),
            "reply_batch_cpu_ms_per_reply": reply_batch(run, prompts(DATA, PROMPTS)),
            "machine": machine(load_start),
        }
    write_results(args.out, results)


if __name__ == "__main__":
    main()
