"""Honest replies (#25): the targets of the issue, measured on one run.

    make bench-honest          # or: .venv/bin/python bench/honest.py -o bench/honest.json
    .venv/bin/python bench/honest.py --model /tmp/hb/run -o /tmp/hb/honest.json   # smoke run

1. Known prompts: every distinct prompt of --data, validation ones included (a finished run's
   memory holds every pair), English and Chinese (a prompt with a CJK character) apart and
   together. Right: the reply is one of the prompt's own replies exactly as the data wrote it,
   and not the fallback. Also the fallback share, and the figure `chatbot eval` reports ("same
   tokens": the reply's tokens equal a reply's after tokenization and truncation); by split too
   (validation-only prompts are in the memory, but the model never learned their replies).
2. Typing variants of those prompts (chatbot.data.variants, seed 0, one of each kind that
   applies): right share and fallback share, per kind and over all, by language and split.
3. Out-of-domain prompts, bench/ood/test.txt (never used to choose a setting): fallback share,
   with examples of what was said instead.
4. Calibration: ECE and AUROC on the run's validation split (rebuilt as `chatbot calibrate`
   does), cross-fitted by chatbot.decoding.calibrate.calibrate: each half of the validation
   prompts scored by a calibration fitted without it (beside it, for comparison,
   chatbot.decoding.calibrate.reliability of the calibration in use, which was fitted on other
   typing variants of the same prompts), and AUROC and ECE over a pooled held-out set:
   seed-0 variants of the validation prompts (right: a reply exactly as the data wrote it) and
   the test.txt prompts (never right), asked with the fallback off.
5. Teaching, in a copy of the run under bench/.work/: 50 test.txt prompts and 50 known prompts
   taught a new reply each; the taught reply's share for them and their seed-0 variants, at
   once and after loading the copy again; then 1,000 more pairs taught one after another, timed
   (and timed again without a file: the index alone); then the known ones forgotten.
6. Latency per reply, one prompt at a time, over 300 seed-0 variants of known prompts, against
   the code from before the issue (commit OLD_COMMIT, a git worktree removed at the end), same
   prompts, same model: in each of ROUNDS rounds, a fresh process of each code, taking turns
   CHUNK prompts at a time so that both meet the same load; wall time, and CPU time.

Settings: the run's own decoding settings, with --min-confidence and --ambiguity if given.
bench/quality.py calls `measure` for its "honest" section.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness import ROOT, load_average, machine, ms, summary, write_results
from known import language, latency_sample, run_split, variant_rows

from chatbot.data.pairs import Pair, read_pairs
from chatbot.data.taught import TAUGHT, Taught
from chatbot.decoding.bot import Bot, Reply
from chatbot.decoding.calibrate import calibrate, reliability
from chatbot.decoding.confidence import auroc, ece
from chatbot.decoding.policy import EXACT
from chatbot.errors import ChatbotError
from chatbot.rundir import CALIBRATION, METRICS

OOD_TEST = ROOT / "bench/ood/test.txt"  # report only: see bench/ood/README.md
WORK = ROOT / "bench/.work"  # git-ignored; the teaching copy goes here, on the run's disk
VARIANT_SEED = 0  # the reporting seed (7 fits the calibration, 11 chooses settings)
SAMPLE_SEED = 0  # draws the prompts taught and timed
BATCH = 256
TAUGHT_EACH = 50  # OOD prompts, and known prompts, taught a new reply
TEACH_TIMED = 1000
LATENCY_PROMPTS = 300
WARM_UP = 5
ROUNDS = 3
CHUNK = 10  # prompts each code replies to before the other's turn
OLD_COMMIT = "6154e71"  # the last commit before issue #25's core
STARTED = time.perf_counter()

TARGETS = {  # name: (path of the figure in the results, comparison, bound)
    "known_right": (("known", "all", "right_share"), ">=", 0.99),
    "known_fallback": (("known", "all", "fallback_share"), "<=", 0.01),
    "variants_right": (("variants", "all", "right_share"), ">=", 0.97),
    "ood_fallback": (("ood", "all", "fallback_share"), ">=", 0.90),
    "auroc_validation": (("calibration", "validation", "auroc"), ">=", 0.9),
    "auroc_pooled": (("calibration", "pooled", "auroc"), ">=", 0.9),
    "taught_variants": (("teaching", "at_once", "variants", "taught_share"), ">=", 0.90),
    "taught_variants_after_restart": (("teaching", "after_restart", "variants",
                                       "taught_share"), ">=", 0.90),
    "teach_mean_ms": (("teaching", "teach_ms", "mean_ms"), "<=", 5.0),
    "teach_p99_ms": (("teaching", "teach_ms", "p99_ms"), "<=", 5.0),
    "latency_p50_ratio": (("latency", "p50_ratio_new_to_old"), "<=", 1.2),
}


def log(message: str) -> None:
    print(f"honest [{time.perf_counter() - STARTED:.0f} s]: {message}", file=sys.stderr,
          flush=True)


# --- shared with bench/choose.py -----------------------------------------------------------------

def known_replies(pairs: Sequence[Pair]) -> dict[str, list[str]]:
    """Each distinct prompt, in order, -> its distinct replies exactly as the data wrote them."""
    found: dict[str, dict[str, None]] = {}
    for pair in pairs:
        found.setdefault(pair.prompt, {})[pair.reply] = None
    return {prompt: list(replies) for prompt, replies in found.items()}


def read_lines(path: str | Path) -> list[str]:
    return [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def code_state() -> dict[str, str]:
    """The commit, and a hash of the chatbot package's sources as they are (they may differ
    from the commit's while work is under way)."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            stdout=subprocess.PIPE, text=True).stdout.strip()
    digest = hashlib.sha256()
    for path in sorted((ROOT / "chatbot").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return {"commit": commit, "chatbot_sources_sha256": digest.hexdigest()[:16]}


def ask(bot: Bot, prompts: Sequence[str]) -> list[Reply]:
    """The replies to `prompts`, BATCH at a time (reply_batch replies as reply does)."""
    return bot.reply_all(prompts, BATCH)


def is_right(reply: Reply, replies: Sequence[str]) -> bool:
    """One of the prompt's own replies exactly as the data wrote it, and not the fallback."""
    return reply.source != "fallback" and reply.text in replies


def counts(prompts: int, **hits: int) -> dict[str, Any]:
    """{"prompts": n, name: count, name_share: count / n} for each count."""
    shares = {f"{name}_share": round(k / prompts, 4) if prompts else None
              for name, k in hits.items()}
    return {"prompts": prompts, **hits, **shares}


def shown(reply: Reply) -> dict[str, Any]:
    """What an example shows of a reply; for the fallback, also what it stood in for."""
    found = {"reply": reply.text, "source": reply.source,
             "confidence": round(reply.confidence, 3),
             "match": reply.match.prompt if reply.match else None}
    if reply.source == "fallback" and len(reply.candidates) > 1:
        best = reply.candidates[1]
        found["instead_of"] = {"reply": best.text, "source": best.source,
                               "match": best.match.prompt if best.match else None}
    return found


# --- 1-3. known prompts, their typing variants, out-of-domain prompts ----------------------------

def known_section(bot: Bot, references: dict[str, list[str]], trained: set[str]
                  ) -> dict[str, Any]:
    """`trained`: the prompts of the run's training split (the others are validation only:
    in the memory, never learned by the model)."""
    prompts = list(references)
    replies = ask(bot, prompts)
    tokenize, max_len = bot.tokenizer.tokenize, bot.config.data.max_len
    same = [tuple(r.tokens) in {tuple(tokenize(ref)[:max_len]) for ref in references[p]}
            for p, r in zip(prompts, replies)]

    def tally(keep: Callable[[str], bool]) -> dict[str, Any]:
        rows = [i for i, p in enumerate(prompts) if keep(p)]
        return counts(
            len(rows), right=sum(is_right(replies[i], references[prompts[i]]) for i in rows),
            fallback=sum(replies[i].source == "fallback" for i in rows),
            same_tokens=sum(same[i] for i in rows))

    section = {lang: tally(lambda p, lang=lang: lang in ("all", language(p)))
               for lang in ("en", "zh", "all")}
    section["by_split"] = {"training": tally(lambda p: p in trained),
                           "validation_only": tally(lambda p: p not in trained)}
    section["missed_examples"] = [
        {"prompt": p, **shown(r), "data_replies": references[p][:2]}
        for p, r in zip(prompts, replies) if not is_right(r, references[p])][:8]
    return section


def variants_section(bot: Bot, pairs: Sequence[Pair], references: dict[str, list[str]],
                     trained: set[str]) -> dict[str, Any]:
    rows = variant_rows(pairs, VARIANT_SEED)  # (kind, prompt, variant)
    replies = ask(bot, [variant for _, _, variant in rows])
    right = [is_right(r, references[p]) for (_, p, _), r in zip(rows, replies)]
    fallback = [r.source == "fallback" for r in replies]

    def tally(keep: Callable[[str, str], bool]) -> dict[str, Any]:
        kept = [i for i, (kind, prompt, _) in enumerate(rows) if keep(kind, prompt)]
        return counts(len(kept), right=sum(right[i] for i in kept),
                      fallback=sum(fallback[i] for i in kept))

    kinds = dict.fromkeys(kind for kind, _, _ in rows)
    section: dict[str, Any] = {"seed": VARIANT_SEED}
    section |= {kind: tally(lambda k, _, kind=kind: k == kind) for kind in kinds}
    section["all"] = tally(lambda k, p: True)
    section["all_by_language"] = {lang: tally(lambda k, p, lang=lang: language(p) == lang)
                                  for lang in ("en", "zh")}
    section["all_by_split"] = {"training": tally(lambda k, p: p in trained),
                               "validation_only": tally(lambda k, p: p not in trained)}
    section["missed_examples"] = [
        {"kind": kind, "prompt": variant, "meant": prompt, **shown(r)}
        for (kind, prompt, variant), r, hit in zip(rows, replies, right) if not hit][:8]
    return section


def ood_section(bot: Bot, prompts: Sequence[str]) -> dict[str, Any]:
    replies = ask(bot, prompts)
    section = {}
    for lang in ("en", "zh", "all"):
        rows = [r for p, r in zip(prompts, replies) if lang in ("all", language(p))]
        section[lang] = counts(len(rows), fallback=sum(r.source == "fallback" for r in rows))
    section["answered_examples"] = [{"prompt": p, **shown(r)} for p, r in zip(prompts, replies)
                                    if r.source != "fallback"][:10]
    # Counted all the same: a line the data has come to know is a fault of the set, not the bot.
    section["known_prompts_in_set"] = [p for p in prompts if bot.memory is not None and any(
        m.similarity >= EXACT for m in bot.memory.search(p, 1))]
    return section


# --- 4. calibration ------------------------------------------------------------------------------

def calibration_section(bot: Bot, train: Sequence[Pair], val: Sequence[Pair],
                        references: dict[str, list[str]], ood: Sequence[str]) -> dict[str, Any]:
    section: dict[str, Any] = {"calibrated": bot.calibration.calibrated}
    if not val or bot.memory is None:
        return {**section, "skipped": "the run has no validation split or no memory"}
    # The target's figure: chatbot.decoding.calibrate's cross-fitting, each half of the
    # validation prompts scored by a calibration fitted without it (on this code; the run's
    # calibration.json is left as it is).
    found = calibrate(bot, train, val)[1]["validation"]
    section["validation"] = {**found, "ece": round(found["ece"], 4),
                             "auroc": round(found["auroc"], 4)}
    # For comparison: the calibration in use, which was fitted on these prompts (other typing
    # variants of them), on the same replies; and `chatbot calibrate`'s report of it.
    in_use = reliability(bot, val)
    section["validation_calibration_in_use"] = {**in_use, "ece": round(in_use["ece"], 4),
                                                "auroc": round(in_use["auroc"], 4)}
    metrics = bot.run_dir / METRICS if bot.run_dir else None
    if metrics is not None and metrics.exists():
        section["calibrate_report"] = json.loads(metrics.read_text()).get("confidence")
    rows = variant_rows(val, VARIANT_SEED)
    saved = bot.decode
    try:
        bot.configure(fallback=False)  # the confidence of what would be said without it
        variants = ask(bot, [variant for _, _, variant in rows])
        outside = ask(bot, ood)
    finally:
        bot.decode = saved
        bot.configure()
    confidence = [r.confidence for r in [*variants, *outside]]
    right = [r.text in references[p] for (_, p, _), r in zip(rows, variants)]
    right += [False] * len(outside)
    section["pooled"] = {"variants": len(variants), "variants_right": sum(right),
                         "ood_prompts": len(outside), "ece": round(ece(confidence, right), 4),
                         "auroc": round(auroc(confidence, right), 4)}
    return section


# --- 5. teaching ---------------------------------------------------------------------------------

def taught_shares(bot: Bot, taught: dict[str, str], origin: dict[str, str]) -> dict[str, Any]:
    """How often the taught reply is said for the taught prompts and their seed-0 variants."""
    prompts = list(taught)
    rows = [(prompt, variant) for _, prompt, variant in
            variant_rows([Pair(p, taught[p], 0) for p in prompts], VARIANT_SEED)]
    replies = ask(bot, [*prompts, *(variant for _, variant in rows)])
    said = [r.source == "taught" and r.text == taught[p]
            for p, r in zip([*prompts, *(p for p, _ in rows)], replies)]
    on_prompts, on_variants = said[: len(prompts)], said[len(prompts):]

    def by_origin(meant: Sequence[str], hits: Sequence[bool]) -> dict[str, Any]:
        return {where: counts(sum(origin[p] == where for p in meant),
                              taught=sum(h for p, h in zip(meant, hits) if origin[p] == where))
                for where in ("ood", "known")}

    missed = [{"prompt": v, "meant": p, **shown(r)}
              for (p, v), r, hit in zip(rows, replies[len(prompts):], on_variants) if not hit]
    return {"prompts": counts(len(prompts), taught=sum(on_prompts)),
            "variants": counts(len(rows), taught=sum(on_variants)),
            "by_origin": {"prompts": by_origin(prompts, on_prompts),
                          "variants": by_origin([p for p, _ in rows], on_variants)},
            "missed_examples": missed[:5]}


def synthetic_prompts(references: dict[str, list[str]], n: int) -> list[str]:
    """n distinct prompts made of words of the known prompts, for timing teach()."""
    words = sorted({w for prompt in references for w in prompt.split()})
    rng = random.Random(SAMPLE_SEED)
    return [" ".join(rng.sample(words, rng.randint(3, 8))) + f" {i}" for i in range(n)]


def teaching_section(run: Path, settings: dict[str, Any], references: dict[str, list[str]],
                     ood: Sequence[str]) -> dict[str, Any]:
    WORK.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="honest-teach-", dir=WORK))
    copy = work / "run"
    # Without the run's own taught pairs, if any: each measurement starts from the data alone.
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(".backup", TAUGHT))
    try:
        bot = configured(copy, settings)
        rng = random.Random(SAMPLE_SEED)
        chosen = {p: "ood" for p in rng.sample(list(ood), TAUGHT_EACH)}
        chosen |= {p: "known" for p in rng.sample(list(references), TAUGHT_EACH)}
        taught = {p: f"This is taught reply number {i}." for i, p in enumerate(chosen)}
        for prompt, reply in taught.items():
            bot.teach(prompt, reply)
        section: dict[str, Any] = {"taught": {"ood": TAUGHT_EACH, "known": TAUGHT_EACH}}
        section["at_once"] = taught_shares(bot, taught, chosen)
        bot = configured(copy, settings)  # a restart: what taught.jsonl kept
        section["after_restart"] = taught_shares(bot, taught, chosen)
        times = []
        for i, prompt in enumerate(synthetic_prompts(references, TEACH_TIMED)):
            started = time.perf_counter()
            bot.teach(prompt, f"Timed reply {i}.")
            times.append(time.perf_counter() - started)
        section["teach_ms"] = {"pairs": len(times), **summary(times), "p99_ms": ms(times, 99),
                               "max_ms": ms(times, 100), "taught_before": len(taught),
                               "fsync": True, "index_only": index_only(bot, references)}
        section["after_1000_more"] = taught_shares(bot, taught, chosen)
        known = [p for p, where in chosen.items() if where == "known"]
        for prompt in known:
            bot.forget(prompt)
        back = ask(bot, known)
        section["forgotten_known"] = counts(len(known), right_again=sum(
            is_right(r, references[p]) for p, r in zip(known, back)))
        return section
    finally:
        shutil.rmtree(work, ignore_errors=True)


def sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else None


def index_only(bot: Bot, references: dict[str, list[str]]) -> dict[str, float]:
    """The same teaching into a Taught without a file: what the search index costs alone,
    without the append and fsync."""
    taught, times = Taught(None, bot.memory), []
    for i, prompt in enumerate(synthetic_prompts(references, TEACH_TIMED)):
        started = time.perf_counter()
        taught.add(prompt, f"Timed reply {i}.")
        times.append(time.perf_counter() - started)
    return {**summary(times), "p99_ms": ms(times, 99)}


def configured(run: Path, settings: dict[str, Any]) -> Bot:
    bot = Bot.load(run)
    bot.configure(**settings)
    return bot


# --- 6. latency against the code from before the issue -------------------------------------------

# Run as `python -c CLOCK TREE RUN SETTINGS`: a process that imports the chatbot package of TREE
# (so it cannot import this module, which imports ours), loads the run, and then times the
# prompts of each line of JSON it reads, one reply at a time, answering with a line of JSON. It
# reads the run through a folder of links with a config.json cut to the settings that tree
# knows (older code refuses unknown ones) and without its training settings, without
# taught.jsonl; files it does not know (calibration.json) it ignores.
CLOCK = r'''
import json, sys, tempfile, time
from dataclasses import fields
from pathlib import Path
tree, run, settings = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve(), sys.argv[3]
sys.path.insert(0, str(tree))
import chatbot
from chatbot.config import RunConfig
from chatbot.decoding.bot import Bot
assert Path(chatbot.__file__).resolve().is_relative_to(tree), chatbot.__file__
with tempfile.TemporaryDirectory() as view:
    for path in run.iterdir():
        if path.name not in ("config.json", "taught.jsonl", ".backup"):
            (Path(view) / path.name).symlink_to(path)
    raw = json.loads((run / "config.json").read_text(encoding="utf-8"))
    # Training settings change no reply, and older code refuses newer values of them (monitor
    # "quality"): its own defaults stand in.
    untrained = ["train"] if raw.pop("train", None) is not None else []
    sections = {f.name: {g.name for g in fields(f.default_factory)}
                for f in fields(RunConfig) if f.name != "format_version"}
    dropped = untrained + [f"{s}.{k}" for s, values in raw.items() if isinstance(values, dict)
                           for k in values if k not in sections.get(s, ())]
    kept = {s: ({k: v for k, v in values.items() if k in sections[s]}
                if isinstance(values, dict) else values)
            for s, values in raw.items() if s in sections or s == "format_version"}
    (Path(view) / "config.json").write_text(json.dumps(kept), encoding="utf-8")
    bot = Bot.load(view)
applied = {k: v for k, v in json.loads(settings).items() if k in sections["decode"]}
bot.configure(**applied)
print(json.dumps({"applied": applied, "dropped": dropped}), flush=True)
for line in sys.stdin:
    wall, cpu, texts = [], [], []
    for prompt in json.loads(line):
        started, used = time.perf_counter(), time.process_time()
        texts.append(bot.reply(prompt).text)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - used)
    print(json.dumps({"wall": wall, "cpu": cpu, "texts": texts}), flush=True)
'''


class Clock:
    """A CLOCK process: the chatbot code of `tree` replying to prompts on request."""

    def __init__(self, tree: Path, run: Path, settings: dict[str, Any]):
        self.process = subprocess.Popen(
            [sys.executable, "-c", CLOCK, str(tree), str(run), json.dumps(settings)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tree)
        self.started = self._read(tree)

    def _read(self, tree: Path | None = None) -> dict[str, Any]:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"honest: timing replies with {tree or 'a tree'} failed (exit "
                             f"{self.process.wait()})")
        return json.loads(line)

    def time(self, prompts: Sequence[str]) -> dict[str, list]:
        self.process.stdin.write(json.dumps(list(prompts), ensure_ascii=False) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def latency_section(run: Path, settings: dict[str, Any], pairs: Sequence[Pair],
                    old_commit: str, tokenize: Callable[[str], list[str]]) -> dict[str, Any]:
    """Each round starts both codes afresh; within it they take turns, CHUNK prompts at a time
    (the first of a pair alternating), so that both meet the same load on a shared machine.
    `tokenize`: the run's tokenizer, that replies of both codes are compared with (the old
    code says a known reply as its tokens detokenized, the new one as the data wrote it)."""
    prompts = latency_sample(pairs, LATENCY_PROMPTS, SAMPLE_SEED)
    scratch = Path(tempfile.mkdtemp(prefix="honest-latency-"))
    trees = {"old": scratch / "old", "new": ROOT}
    git = ["git", "-C", str(ROOT)]
    subprocess.run([*git, "worktree", "add", "--detach", "--quiet", str(trees["old"]),
                    old_commit], check=True)
    measured = {name: {"wall": [], "cpu": []} for name in trees}
    rounds, texts, started = [], {}, {}
    try:
        for round_ in range(ROUNDS):
            log(f"latency: round {round_ + 1} of {ROUNDS}")
            clocks = {name: Clock(tree, run, settings) for name, tree in trees.items()}
            try:
                for clock in clocks.values():
                    clock.time(prompts[:WARM_UP])
                found = {name: {"wall": [], "cpu": [], "texts": []} for name in clocks}
                for turn, start in enumerate(range(0, len(prompts), CHUNK)):
                    for name in (("old", "new") if turn % 2 == 0 else ("new", "old")):
                        for key, values in clocks[name].time(prompts[start: start + CHUNK]
                                                             ).items():
                            found[name][key] += values
            finally:
                for clock in clocks.values():
                    clock.close()
            started = {name: clock.started for name, clock in clocks.items()}
            for name in trees:
                measured[name]["wall"] += found[name]["wall"]
                measured[name]["cpu"] += found[name]["cpu"]
                texts[name] = found[name]["texts"]
            p50 = {name: ms(found[name]["wall"], 50) for name in trees}
            rounds.append({"old_p50_ms": p50["old"], "new_p50_ms": p50["new"],
                           "p50_ratio_new_to_old": round(p50["new"] / p50["old"], 3)})
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(trees["old"])], check=False)
        subprocess.run([*git, "worktree", "prune"], check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    wall = {name: summary(measured[name]["wall"]) for name in trees}
    cpu = {name: summary(measured[name]["cpu"]) for name in trees}
    same = sum(tokenize(new) == tokenize(old) for new, old in zip(texts["new"], texts["old"]))
    return {"prompts": len(prompts), "rounds": ROUNDS, "chunk": CHUNK, "old_commit": old_commit,
            "new": wall["new"], "old": wall["old"],
            "p50_ratio_new_to_old": round(wall["new"]["p50_ms"] / wall["old"]["p50_ms"], 3),
            "cpu": {**cpu, "p50_ratio_new_to_old": round(
                cpu["new"]["p50_ms"] / cpu["old"]["p50_ms"], 3)},
            "by_round": rounds, "settings_new": started["new"]["applied"],
            "config_keys_dropped_for_old": started["old"]["dropped"],
            "same_reply_tokens_share": round(same / len(prompts), 4)}


# --- targets, and the whole measurement ----------------------------------------------------------

def targets(results: dict[str, Any]) -> dict[str, Any]:
    """Each target of issue #25 with its figure and whether it is met."""
    found = {}
    for name, (path, comparison, bound) in TARGETS.items():
        value: Any = results
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        met = value is not None and (value >= bound if comparison == ">=" else value <= bound)
        found[name] = {"value": value, "target": f"{comparison} {bound}", "met": met}
    return found


def measure(model: str | Path, data: str | Path, min_confidence: float | None = None,
            ambiguity: float | None = None, old_commit: str | None = OLD_COMMIT,
            ood_test: str | Path = OOD_TEST) -> dict[str, Any]:
    """Every figure of this benchmark on the run `model`, with its `data`; the latency
    comparison is left out when `old_commit` is None."""
    run = Path(model).resolve()
    changes = {name: value for name, value in (("min_confidence", min_confidence),
                                               ("ambiguity", ambiguity)) if value is not None}
    try:
        bot = configured(run, changes)
    except ChatbotError as exc:
        raise SystemExit(f"honest: error: {exc}") from None
    bot.taught = Taught(None, bot.memory)  # the data alone, whatever was taught in the run
    settings = {"fallback": bot.decode.fallback, "min_confidence": bot.decode.min_confidence,
                "ambiguity": bot.decode.ambiguity}
    pairs = read_pairs(data, bot.config.data.on_bad_lines).pairs
    references = known_replies(pairs)
    ood = read_lines(ood_test)
    train, val = run_split(bot.config, data)
    results: dict[str, Any] = {"model": str(model), "data": str(data), "settings": {
        **settings, "changed_here": changes, "calibrated": bot.calibration.calibrated,
        "calibration_sha256": sha256(run / CALIBRATION),
        "variant_seed": VARIANT_SEED, "ood_test": str(Path(ood_test).relative_to(ROOT))
        if Path(ood_test).resolve().is_relative_to(ROOT) else str(ood_test)}}
    seconds: dict[str, float] = {}
    trained = {p.prompt for p in train}
    steps = [("known", lambda: known_section(bot, references, trained)),
             ("variants", lambda: variants_section(bot, pairs, references, trained)),
             ("ood", lambda: ood_section(bot, ood)),
             ("calibration", lambda: calibration_section(bot, train, val, references, ood)),
             ("teaching", lambda: teaching_section(run, settings, references, ood))]
    if old_commit:
        steps.append(("latency", lambda: latency_section(run, settings, pairs, old_commit,
                                                         bot.tokenizer.tokenize)))
    for name, step in steps:
        log(name)
        started = time.perf_counter()
        results[name] = step()
        seconds[name] = round(time.perf_counter() - started, 1)
    results["targets"] = targets(results)
    results["code"] = code_state()
    results["seconds"] = seconds
    return results


def table(results: dict[str, Any]) -> str:
    lines = [f"{'target':32} {'value':>10} {'bound':>10}  met"]
    for name, found in results["targets"].items():
        value = found["value"]
        text = "-" if value is None else f"{value:.4g}"
        lines.append(f"{name:32} {text:>10} {found['target']:>10}  {found['met']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/default", help="the run directory")
    parser.add_argument("--data", default="data/chatterbot.tsv", help="the run's data")
    parser.add_argument("-o", "--out", default=str(ROOT / "bench/honest.json"))
    parser.add_argument("--min-confidence", type=float, default=None,
                        help="instead of the run's own setting")
    parser.add_argument("--ambiguity", type=float, default=None,
                        help="instead of the run's own setting")
    parser.add_argument("--old-commit", default=OLD_COMMIT,
                        help="the code timed against (default: before issue #25)")
    parser.add_argument("--skip-old", action="store_true", help="leave out the latency part")
    args = parser.parse_args(argv)
    load_start = load_average()
    results = measure(args.model, args.data, args.min_confidence, args.ambiguity,
                      None if args.skip_old else args.old_commit)
    results["machine"] = machine(load_start)
    results["seconds"]["total"] = round(time.perf_counter() - STARTED, 1)
    write_results(args.out, results)
    print(table(results))


if __name__ == "__main__":
    main()
