"""How fast `chatbot serve` answers, how far batching carries it, and whether its memory grows:

    .venv/bin/python bench/serve.py -o bench/serve.json                  (make bench-serve)

The server runs as `chatbot serve` in its own process on a free localhost port; the clients
are threads of this process with one keep-alive connection each, asking the prompts of the
training data in turn (so most replies come through the memory of training pairs, as in the
chat). The clients use the standard library's http.client, the lightest load generator at hand:
they share the server's cores, and httpx cost about 2 ms of CPU a request where http.client
costs about 0.5 (the tests use httpx and the openai package). Figures, all measured at the
client:

- latency of a non-streamed reply at concurrency 1 (p50, p90, p99);
- time to the first streamed token (the first content delta) at concurrency 1, with the
  default settings (the reply is chosen, then streamed word by word) and with retrieval off
  (tokens stream as they are generated);
- replies per second at concurrency 1 and 16 (a fixed number of requests each), their ratio,
  and the mean batch the server decoded (from /health), with the default settings and with
  retrieval off;
- errors (any answer but 200) over every phase;
- the server's resident set size after start-up, and after every request of the run (at least
  `--requests`, 10,000 by default, the rest at concurrency 16);
- the CPU time of a request at concurrency 1 and 16, in the server and in the client threads,
  and what it bounds: on this machine's cores, the replies/s at concurrency 16 can be at most
  cores / (CPU time per request at 16), and at concurrency 1 they are 1 / latency; so the
  ratio of the two can be at most cores * latency at 1 / CPU time per request at 16, whatever
  the batching;
- for comparison, what the server adds: `Bot.reply` on the same prompts in this process (one
  BLAS thread, as the server has), and the round trip of GET /health; and what batching can
  give at most: `Bot.reply_batch` in this process, replies per second in batches of 1 and 16.

The model is models/default when it has finished training, else a run trained for the
benchmark on the default data (`chatbot train --preset default --max-minutes 2`, in
bench/.work/serve, once).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness import cpu_seconds, load_average, machine, write_results  # noqa: E402

from chatbot.rundir import FINISHED, run_state  # noqa: E402

DEFAULT_RUN = ROOT / "models" / "default"
BENCH_RUN = ROOT / "bench" / ".work" / "serve"
DATA = ROOT / "data" / "chatterbot.tsv"
MIB = 2**20
LATENCY_REQUESTS = 300  # non-streamed, concurrency 1
STREAM_REQUESTS = 100  # streamed, concurrency 1, per setting
RATE_REQUESTS = {1: 300, 16: 1200}  # replies/s at each concurrency
SETTINGS = {"default": {}, "retrieval_off": {"retrieval": False}}
CONCURRENCY = 16


def model_run() -> Path:
    """models/default if it has finished training, else the benchmark's own run."""
    if run_state(DEFAULT_RUN).state == FINISHED:
        return DEFAULT_RUN
    if run_state(BENCH_RUN).state != FINISHED:
        print(f"no finished models/default: training {BENCH_RUN} (about 3 minutes) ...",
              file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "chatbot.cli", "train", "--data", str(DATA),
                        "--out", str(BENCH_RUN), "--preset", "default", "--max-minutes", "2",
                        "--if-needed"], check=True, cwd=ROOT)
    return BENCH_RUN


def prompts(path: Path, count: int = 500) -> list[str]:
    seen: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        prompt = line.split("\t")[0].strip()
        if prompt:
            seen[prompt] = None
    return list(seen)[:count]


class Server:
    """`chatbot serve --port 0` in a subprocess, until stop()."""

    def __init__(self, run: Path):
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chatbot.cli", "serve", "--model", str(run), "--port", "0",
             "--max-concurrent", "256"],
            stdout=subprocess.PIPE, text=True, cwd=ROOT)
        line = self.process.stdout.readline()
        if " at http" not in line:
            raise SystemExit(f"chatbot serve did not start: {line!r}")
        self.url = line.split(" at ")[1].split("/v1")[0]
        self.http = httpx.Client(base_url=self.url)  # keep-alive, as the clients'
        while self.http.get("/health").status_code != 200:
            time.sleep(0.01)
        self.startup_seconds = time.perf_counter() - started

    def cpu_seconds(self) -> float:
        """The server process's CPU time so far, user and system."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
        kib = int(next(line for line in status if line.startswith("VmRSS:")).split()[1])
        return round(kib / 1024, 1)

    def health(self) -> dict:
        return self.http.get("/health").json()

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(timeout=10)


class Clients:
    """Closed-loop clients: `concurrency` threads sending `requests` requests in all."""

    def __init__(self, url: str, texts: list[str]):
        address = urlsplit(url)
        self.host, self.port = address.hostname, address.port
        self.texts = texts
        self.errors = 0
        self.sent = 0
        self.lock = threading.Lock()

    def run(self, requests: int, concurrency: int, body: dict | None = None,
            stream: bool = False) -> tuple[float, list[float], list[float]]:
        """Wall seconds of the whole run, each request's seconds, and (streams) each one's
        seconds to its first content delta."""
        latencies: list[float] = []
        firsts: list[float] = []
        counter = iter(range(requests))

        def client() -> None:
            http = HTTPConnection(self.host, self.port, timeout=60)
            try:
                for i in counter:  # shared: the threads take requests until none is left
                    text = self.texts[i % len(self.texts)]
                    payload = {"messages": [{"role": "user", "content": text}],
                               **(body or {}), **({"stream": True} if stream else {})}
                    start = time.perf_counter()
                    ok, first = self._ask(http, payload, stream, start)
                    latencies.append(time.perf_counter() - start)
                    if first is not None:
                        firsts.append(first)
                    with self.lock:
                        self.sent += 1
                        self.errors += not ok
            finally:
                http.close()

        threads = [threading.Thread(target=client) for _ in range(concurrency)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - start, latencies, firsts

    @staticmethod
    def _ask(http: HTTPConnection, payload: dict, stream: bool, start: float
             ) -> tuple[bool, float | None]:
        try:
            http.request("POST", "/v1/chat/completions", body=json.dumps(payload).encode(),
                         headers={"Content-Type": "application/json"})
            response = http.getresponse()
            if not stream:
                body = response.read()
                return response.status == 200 and bool(json.loads(body)["choices"]), None
            if response.status != 200:
                response.read()
                return False, None
            first, last = None, ""
            for raw in response:  # the event stream's lines (http.client undoes the chunking)
                line = raw.decode().rstrip("\r\n")
                if first is None and '"content"' in line:
                    first = time.perf_counter() - start
                last = line or last
            return last == "data: [DONE]", first
        except (OSError, HTTPException, ValueError, KeyError):
            http.close()  # (the next request opens a new connection)
            return False, None


def bot_batch_seconds(run: Path, texts: list[str], count: int, batch: int = 1,
                      **settings) -> list[float]:
    """Seconds of each `Bot.reply_batch` of `batch` prompts in this process (`count` batches),
    with the server's one BLAS thread."""
    from threadpoolctl import threadpool_limits

    from chatbot.bot import Bot

    bot = Bot.load(run)
    bot.configure(**settings)
    seconds = []
    with threadpool_limits(1, user_api="blas"):
        for i in range(count):
            start = time.perf_counter()
            bot.reply_batch([texts[(i * batch + j) % len(texts)] for j in range(batch)])
            seconds.append(time.perf_counter() - start)
    return seconds


def ms(values: list[float], q: float) -> float:
    return round(1000 * statistics.quantiles(values, n=100)[q - 1], 2) if len(values) > 1 \
        else round(1000 * values[0], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--out", default="bench/serve.json")
    parser.add_argument("--model", default=None, help="run directory (default: see above)")
    parser.add_argument("--requests", type=int, default=10_000,
                        help="requests in the whole run, for the memory figure")
    args = parser.parse_args()
    run = Path(args.model) if args.model else model_run()
    texts = prompts(DATA)
    load_start = load_average()
    in_process = bot_batch_seconds(run, texts, LATENCY_REQUESTS)
    in_process_live = bot_batch_seconds(run, texts, STREAM_REQUESTS, retrieval=False)
    ceiling = {name: {f"batch_{b}": round(b * n / sum(bot_batch_seconds(run, texts, n, b, **s)),
                                          1) for b, n in ((1, 160), (16, 20))}
               for name, s in SETTINGS.items()}
    server = Server(run)
    try:
        clients = Clients(server.url, texts)
        rss_start = server.rss_mib()
        clients.run(50, 1)  # warm-up
        health = []
        for _ in range(100):
            start = time.perf_counter()
            server.health()
            health.append(time.perf_counter() - start)
        rss_warm = server.rss_mib()
        _, latencies, _ = clients.run(LATENCY_REQUESTS, 1)
        _, streamed, firsts = clients.run(STREAM_REQUESTS, 1, stream=True)
        _, live_streamed, live_firsts = clients.run(STREAM_REQUESTS, 1, {"retrieval": False},
                                                    stream=True)
        rates: dict = {name: {} for name in SETTINGS}
        for name, settings in SETTINGS.items():
            for concurrency, count in RATE_REQUESTS.items():
                before = server.health()
                server_cpu, clients_cpu = server.cpu_seconds(), cpu_seconds()[1]
                seconds, _, _ = clients.run(count, concurrency, settings)
                cpu = {"server": server.cpu_seconds() - server_cpu,
                       "clients": cpu_seconds()[1] - clients_cpu}
                after = server.health()
                rates[name][f"concurrency_{concurrency}"] = round(count / seconds, 1)
                rates[name][f"cpu_ms_per_request_{concurrency}"] = {
                    k: round(1000 * v / count, 2) for k, v in cpu.items()}
                rates[name][f"wall_ms_per_request_{concurrency}"] = round(1000 * seconds / count,
                                                                          2)
                rates[name][f"mean_batch_{concurrency}"] = round(
                    (after["batched_replies"] - before["batched_replies"])
                    / max(1, after["batches"] - before["batches"]), 2)
            rates[name]["ratio_16_over_1"] = round(
                rates[name]["concurrency_16"] / rates[name]["concurrency_1"], 2)
            rates[name]["ratio_bound_from_cpu"] = round(  # (see the module docstring)
                os.cpu_count() * rates[name]["wall_ms_per_request_1"]
                / sum(rates[name][f"cpu_ms_per_request_{CONCURRENCY}"].values()), 2)
        rss_by_requests = {clients.sent: server.rss_mib()}
        soak_start = time.perf_counter()
        while clients.sent < args.requests:  # the rest at concurrency 16, RSS every 2,000
            clients.run(min(2000, args.requests - clients.sent), CONCURRENCY)
            rss_by_requests[clients.sent] = server.rss_mib()
        soak_seconds = time.perf_counter() - soak_start
        rss_end = server.rss_mib()
        total = clients.sent
    finally:
        server.stop()

    results = {
        "what": "chatbot serve in its own process, measured from client threads of another on "
                "the same machine (keep-alive HTTP on localhost); prompts of the training data "
                "in turn; milliseconds and replies per second",
        "model": str(run.relative_to(ROOT) if run.is_relative_to(ROOT) else run),
        "startup_seconds": round(server.startup_seconds, 2),
        "latency_ms_concurrency_1": {"p50": ms(latencies, 50), "p90": ms(latencies, 90),
                                     "p99": ms(latencies, 99), "requests": len(latencies)},
        "first_token_ms_concurrency_1": {
            "chosen_then_streamed_p50": ms(firsts, 50),
            "chosen_then_streamed_whole_reply_p50": ms(streamed, 50),
            "live_retrieval_off_p50": ms(live_firsts, 50),
            "live_retrieval_off_whole_reply_p50": ms(live_streamed, 50),
            "requests_each": STREAM_REQUESTS},
        "replies_per_second": rates,
        "errors": clients.errors,
        "requests": total,
        "rss_mib": {"after_start": rss_start, "after_warmup": rss_warm,
                    f"after_{total}_requests": rss_end,
                    "growth_after_warmup": round(rss_end - rss_warm, 1),
                    "by_requests_served": rss_by_requests},
        "soak_seconds": round(soak_seconds, 1),
        "for_comparison_ms_p50": {
            "bot_reply_in_process": ms(in_process, 50),
            "bot_reply_in_process_retrieval_off": ms(in_process_live, 50),
            "get_health_round_trip": ms(health, 50)},
        "bot_reply_batch_in_process_replies_per_second": ceiling,
        "machine": machine(load_start),
    }
    write_results(args.out, results)


if __name__ == "__main__":
    main()
