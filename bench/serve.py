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

Then an adversarial phase (issue #24), on a fresh `chatbot serve` with the default limits,
about a minute; `--adversarial-only` runs it alone and replaces only the "adversarial" key of
an existing --out file. Each request body is under the default 1 MiB limit (adversarial_bodies
builds them): one word of 200,000 letters and one of 1,000,000, 80,000 random letters, a 1 MB
prompt streamed as one word and as many words (refused: over --max-prompt-tokens), beam 20,000,
length_penalty 1e308, a lone surrogate in an unknown field's name, 1 MB of Chinese, beam 16
with 8 choices of 256 tokens and beam 16 with nbest 16 and MMI (both refused: over --max-work),
beam 16 with 8 choices of 92 tokens, and the costliest requests the limits allow that were
found: 8 choices of as many tokens as --max-work allows, no shorter, reranked by MMI, with 20
top log-probabilities per token, from beam 16 with retrieval off (62 tokens), or sampled with a
seed each from the whole vocabulary with no repeated 3-gram (78 tokens). Figures:

- for each kind alone (`ADVERSARIAL_REPEATS` times, the most kept): its status, wall ms at the
  client, and the server CPU seconds it cost (utime + stime of /proc/PID/stat, before and
  after);
- the 8 heavy kinds (`MIX`) at once, one client thread each sending its request again and
  again for `MIX_SECONDS`, while another thread sends GET /health every 20 ms on its own
  keep-alive connection: /health p50, p99 and max, each kind's answers and wall ms, the
  server's CPU over the window, and its peak RSS (VmHWM, since its start, and VmRSS sampled
  with each /health);
- 8 connections sending a body 1 byte a second, against a server with --max-concurrent 8 (so
  that they would hold every place if they counted), while 2 client threads send ordinary
  requests: how the slow ones were answered, and the ordinary requests' statuses (429s should
  be 0) and latency;
- whether the issue's targets are met: at most 1 s of server CPU per request, /health p99 at
  most 100 ms during the mix, RSS at most 300 MiB, no ordinary request refused during the slow
  bodies.

The model is models/default when it has finished training, else a run trained for the
benchmark on the default data (`chatbot train --preset default --max-minutes 2`, in
bench/.work/serve, once).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import socket
import subprocess
import sys
import threading
import time
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from harness import ROOT, cpu_seconds, load_average, machine, ms, write_results  # noqa: E402

from chatbot.rundir import FINISHED, run_state  # noqa: E402
from chatbot.serving.limits import DEFAULT_LIMITS  # noqa: E402

DEFAULT_RUN = ROOT / "models" / "default"
BENCH_RUN = ROOT / "bench" / ".work" / "serve"
DATA = ROOT / "data" / "chatterbot.tsv"
MIB = 2**20
LATENCY_REQUESTS = 300  # non-streamed, concurrency 1
STREAM_REQUESTS = 100  # streamed, concurrency 1, per setting
RATE_REQUESTS = {1: 300, 16: 1200}  # replies/s at each concurrency
SETTINGS = {"default": {}, "retrieval_off": {"retrieval": False}}
CONCURRENCY = 16
COMPLETIONS = "/v1/chat/completions"
JSON = {"Content-Type": "application/json"}  # (any other type gets 415)
ADVERSARIAL_REPEATS = 3  # each kind alone, for its CPU figure (the most is kept)
MIX_SECONDS = 10.0  # the heavy kinds at once
HEALTH_EVERY = 0.02  # seconds between GET /health during the mix
SLOW_BODIES = 8  # connections sending a body 1 byte a second
TARGETS = {"server_cpu_s_per_request": 1.0, "health_p99_ms": 100.0, "rss_mib": 300.0}


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

    def __init__(self, run: Path, flags: tuple[str, ...] = ("--max-concurrent", "256")):
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chatbot.cli", "serve", "--model", str(run), "--port", "0",
             *flags], stdout=subprocess.PIPE, text=True, cwd=ROOT)
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

    def rss_mib(self, field: str = "VmRSS") -> float:
        """The resident set size now, or at its peak so far with "VmHWM"."""
        status = Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
        kib = int(next(line for line in status if line.startswith(field + ":")).split()[1])
        return round(kib / 1024, 1)

    def address(self) -> tuple[str, int]:
        address = urlsplit(self.url)
        return address.hostname, address.port

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
            http.request("POST", COMPLETIONS, body=json.dumps(payload).encode(),
                         headers=JSON)
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

    from chatbot.decoding.bot import Bot

    bot = Bot.load(run)
    bot.configure(**settings)
    seconds = []
    with threadpool_limits(1, user_api="blas"):
        for i in range(count):
            start = time.perf_counter()
            bot.reply_batch([texts[(i * batch + j) % len(texts)] for j in range(batch)])
            seconds.append(time.perf_counter() - start)
    return seconds


# --- the adversarial phase --------------------------------------------------------------------

def adversarial_bodies() -> dict[str, bytes]:
    """Each adversarial kind's request body, every one under the default body limit."""
    rng = random.Random(0)

    def ask(content: str, ascii: bool = False, **fields) -> bytes:
        payload = {"messages": [{"role": "user", "content": content}], **fields}
        return json.dumps(payload, ensure_ascii=ascii).encode()  # (Chinese: 3 bytes a char)

    letters = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=80_000))
    chinese = "".join("，" if i % 12 == 11 else chr(rng.randint(0x4E00, 0x9FA5))
                      for i in range(333_000))
    # The costliest found within the limits: 8 choices of as many tokens as --max-work
    # allows (chatbot.serving.completions.Completion.work), no shorter, each reranked by MMI and
    # sent with its 20 most probable tokens at every position.
    costly = {"n": 8, "mmi": 10, "logprobs": True, "top_logprobs": 20}

    def longest(rows: int) -> dict:
        tokens = DEFAULT_LIMITS.max_work // rows
        return {"max_tokens": tokens, "min_len": tokens}

    bodies = {
        "word_200k_letters": ask("a" * 200_000),
        "word_1m_letters": ask("a" * 1_000_000),
        "random_80k_letters": ask(letters),
        "streamed_word_1m_letters": ask("b" * 1_000_000, stream=True),
        "streamed_1m_of_words": ask("ab " * 333_333, stream=True),  # > --max-prompt-tokens
        "beam_20000": ask("hello", beam=20_000, max_tokens=256),
        "length_penalty_1e308": ask("hello", beam=5, length_penalty=1e308),
        "lone_surrogate_field_name": ask("hello", ascii=True, **{"\ud800x": 1}),
        "chinese_1m": ask(chinese),
        "beam_16_n_8_max_tokens_256": ask("hello", beam=16, max_tokens=256, n=8),
        # work: 92 x (16 hypotheses + 8 candidates and 3 known replies reranked) = 2484
        "beam_16_n_8_max_tokens_92": ask("hello", beam=16, max_tokens=92, n=8),
        # rows: 16 hypotheses + 2 x 8 candidates (MMI) + 8 of logprobs
        "costliest_beam": ask("hello", beam=16, retrieval=False, **costly, **longest(40)),
        # rows: 8 choices + 2 x 8 candidates (MMI) + 8 of logprobs
        "costliest_sampled": ask("hello", temperature=2, top_k=100_000, seed=1,
                                 no_repeat_ngram=3, **costly, **longest(32)),
        "over_max_work": ask("hello", beam=16, nbest=16, max_tokens=256, n=8, mmi=10),
    }
    for name, body in bodies.items():
        assert len(body) < DEFAULT_LIMITS.max_body_bytes, (name, len(body))
    return bodies


# The heavy kinds sent at once: the costliest to decode, and the largest bodies.
MIX = ("beam_16_n_8_max_tokens_92", "costliest_beam", "costliest_sampled", "word_1m_letters",
       "random_80k_letters", "streamed_word_1m_letters", "streamed_1m_of_words", "chinese_1m")


def post(http: HTTPConnection, body: bytes) -> int:
    """POSTs `body` for a completion and reads the whole answer (a stream to its end): its
    status, or 0 when the connection failed (closed: the next request opens another)."""
    try:
        http.request("POST", COMPLETIONS, body=body, headers=JSON)
        response = http.getresponse()
        response.read()
        return response.status
    except (OSError, HTTPException):
        http.close()
        return 0


def counts(statuses: list[int]) -> dict[str, int]:
    return {str(status): statuses.count(status) for status in sorted(set(statuses))}


def alone(server: Server, bodies: dict[str, bytes]) -> dict:
    """Each kind by itself, ADVERSARIAL_REPEATS times: its status, the most wall ms at the
    client and the most server CPU seconds; and the server's peak RSS so far (VmHWM) after it,
    which says what raised it."""
    http = HTTPConnection(*server.address(), timeout=120)
    figures = {}
    for name, body in bodies.items():
        statuses, walls, cpus = [], [], []
        for _ in range(ADVERSARIAL_REPEATS):
            cpu, start = server.cpu_seconds(), time.perf_counter()
            statuses.append(post(http, body))
            walls.append(time.perf_counter() - start)
            time.sleep(0.05)  # (any work left after the answer is counted too)
            cpus.append(server.cpu_seconds() - cpu)
        figures[name] = {"status": statuses[0] if len(set(statuses)) == 1 else counts(statuses),
                         "wall_ms": round(1000 * max(walls), 1),
                         "server_cpu_s": round(max(cpus), 2), "body_bytes": len(body),
                         "peak_rss_mib_so_far": server.rss_mib("VmHWM")}
        print(f"  {name}: {figures[name]}", file=sys.stderr, flush=True)
    http.close()
    return figures


def mix(server: Server, bodies: dict[str, bytes]) -> dict:
    """The MIX kinds at once for MIX_SECONDS, a client thread each, while GET /health is sent
    every HEALTH_EVERY seconds on its own connection and the server's RSS read after each."""
    stop = threading.Event()
    answers: dict[str, list[tuple[int, float]]] = {name: [] for name in MIX}
    health: list[float] = []
    health_errors, rss = 0, []

    def client(name: str) -> None:
        http = HTTPConnection(*server.address(), timeout=120)
        while not stop.is_set():  # the request under way when the window ends finishes
            start = time.perf_counter()
            status = post(http, bodies[name])
            answers[name].append((status, time.perf_counter() - start))
        http.close()

    def poll() -> None:
        nonlocal health_errors
        http = HTTPConnection(*server.address(), timeout=60)
        while not stop.is_set():
            start = time.perf_counter()
            try:
                http.request("GET", "/health")
                response = http.getresponse()
                ok = response.status == 200 and b'"ok"' in response.read()
            except (OSError, HTTPException):
                http.close()
                ok = False
            health.append(time.perf_counter() - start)
            health_errors += not ok
            rss.append(server.rss_mib())
            time.sleep(max(0.0, HEALTH_EVERY - (time.perf_counter() - start)))
        http.close()

    threads = [threading.Thread(target=client, args=(name,)) for name in MIX]
    poller = threading.Thread(target=poll)
    cpu, start = server.cpu_seconds(), time.perf_counter()
    for thread in (*threads, poller):
        thread.start()
    time.sleep(MIX_SECONDS)
    stop.set()
    window_cpu, window = server.cpu_seconds() - cpu, time.perf_counter() - start
    poller.join()
    for thread in threads:
        thread.join()
    return {
        "seconds": round(window, 1),
        "server_cores_busy": round(window_cpu / window, 2),
        "health_ms": {"p50": ms(health, 50), "p99": ms(health, 99),
                      "max": round(1000 * max(health), 1), "requests": len(health),
                      "errors": health_errors},
        "rss_mib_sampled": {"min": min(rss), "max": max(rss)},
        "kinds": {name: {"answers": counts([status for status, _ in got]),
                         "wall_ms_p50": ms([s for _, s in got], 50),
                         "wall_ms_max": round(1000 * max(s for _, s in got), 1)}
                  for name, got in answers.items()}}


def slow_bodies(server: Server, texts: list[str]) -> dict:
    """SLOW_BODIES connections sending a body 1 byte a second (a whole request's headers at
    once), while 2 client threads send ordinary requests until the slow ones are answered."""
    host, port = server.address()
    body = json.dumps({"messages": [{"role": "user", "content": "hello " * 20}]}).encode()
    head = (f"POST {COMPLETIONS} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: "
            f"application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    slow: list[tuple[int, float, int]] = []  # (status or 0 if closed, seconds, bytes sent)

    def crawl() -> None:
        start = time.perf_counter()
        sent, status = 0, 0
        with socket.create_connection((host, port), timeout=60) as sock:
            sock.sendall(head)
            while sent < len(body):
                if select.select([sock], [], [], 1.0)[0]:  # answered (or closed)
                    reply = sock.recv(65536)
                    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0
                    break
                try:
                    sock.sendall(body[sent:sent + 1])
                except OSError:
                    break
                sent += 1
        slow.append((status, time.perf_counter() - start, sent))

    crawlers = [threading.Thread(target=crawl) for _ in range(SLOW_BODIES)]
    ordinary: list[tuple[int, float]] = []

    def client(offset: int) -> None:
        http = HTTPConnection(host, port, timeout=60)
        i = offset
        while any(thread.is_alive() for thread in crawlers):
            payload = {"messages": [{"role": "user", "content": texts[i % len(texts)]}]}
            start = time.perf_counter()
            ordinary.append((post(http, json.dumps(payload).encode()),
                             time.perf_counter() - start))
            i += 2
        http.close()

    for thread in crawlers:
        thread.start()
    time.sleep(0.5)  # the slow ones first
    clients = [threading.Thread(target=client, args=(i,)) for i in range(2)]
    for thread in clients:
        thread.start()
    for thread in (*crawlers, *clients):
        thread.join()
    statuses = [status for status, _ in ordinary]
    return {
        "connections": SLOW_BODIES, "body_bytes": len(body),
        "slow_answers": counts([status for status, _, _ in slow]),  # 0: closed unanswered
        "slow_answered_after_s_max": round(max(s for _, s, _ in slow), 1),
        "slow_bytes_sent_max": max(n for _, _, n in slow),
        "ordinary_answers": counts(statuses),
        "ordinary_429": statuses.count(429),
        "ordinary_latency_ms": {"p50": ms([s for _, s in ordinary], 50),
                                "p99": ms([s for _, s in ordinary], 99)}}


def adversarial(run: Path, texts: list[str]) -> dict:
    """The adversarial phase (see the module docstring), on servers of its own."""
    load_start = load_average()
    bodies = adversarial_bodies()
    server = Server(run, ())  # the default limits
    try:
        rss_start = server.rss_mib()
        print("adversarial requests, each alone:", file=sys.stderr, flush=True)
        kinds = alone(server, bodies)
        peak_alone = server.rss_mib("VmHWM")
        print(f"the {len(MIX)} heavy kinds at once for {MIX_SECONDS:g} s ...", file=sys.stderr,
              flush=True)
        heavy = mix(server, bodies)
        peak = server.rss_mib("VmHWM")
    finally:
        server.stop()
    print(f"{SLOW_BODIES} slow bodies ...", file=sys.stderr, flush=True)
    server = Server(run, ("--max-concurrent", str(SLOW_BODIES)))
    try:
        slow = slow_bodies(server, texts)
    finally:
        server.stop()
    costliest = max(kinds, key=lambda name: kinds[name]["server_cpu_s"])
    most_cpu = kinds[costliest]["server_cpu_s"]
    return {
        "what": "requests built to cost the server (each under the default 1 MiB body limit), "
                "against chatbot serve with the default limits: each alone, then the heavy "
                "ones at once with GET /health polled beside them; and slow bodies (see "
                "bench/serve.py's docstring)",
        "targets": {
            "max_server_cpu_s_per_request": most_cpu,
            "max_server_cpu_kind": costliest,
            "cpu_per_request_within_1s":
                most_cpu <= TARGETS["server_cpu_s_per_request"],
            "health_p99_within_100ms_during_mix":
                heavy["health_ms"]["p99"] <= TARGETS["health_p99_ms"],
            "peak_rss_mib": peak,  # (VmHWM: the most, sampled or not)
            "rss_within_300mib": peak <= TARGETS["rss_mib"],
            "no_429_during_slow_bodies": slow["ordinary_429"] == 0},
        "alone": {"repeats": ADVERSARIAL_REPEATS, "kinds": kinds},
        "mix": {"kinds_at_once": len(MIX), **heavy},
        "rss_mib": {"after_start": rss_start, "peak_vmhwm_after_alone": peak_alone,
                    "peak_vmhwm_after_mix": peak},
        "slow_bodies": {"server_max_concurrent": SLOW_BODIES, **slow},
        "machine": machine(load_start),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--out", default="bench/serve.json")
    parser.add_argument("--model", default=None, help="run directory (default: see above)")
    parser.add_argument("--requests", type=int, default=10_000,
                        help="requests in the whole run, for the memory figure")
    parser.add_argument("--adversarial-only", action="store_true",
                        help="only the adversarial phase: its figures replace the "
                             "\"adversarial\" key of --out, the rest is kept")
    args = parser.parse_args()
    run = Path(args.model) if args.model else model_run()
    texts = prompts(DATA)
    if args.adversarial_only:
        out = Path(args.out)
        results = json.loads(out.read_text()) if out.exists() else {}
        results["adversarial"] = adversarial(run, texts)
        write_results(out, results)
        return
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
    results["adversarial"] = adversarial(run, texts)  # (after: the figures above are as before)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
