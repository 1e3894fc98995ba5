"""Context benchmark: is the context used, does it slow training, and what does it cost a reply.

    make bench-context          # or: .venv/bin/python bench/context.py -o bench/context.json

A smoke run (a few minutes; its figures mean nothing):

    .venv/bin/python bench/context.py -o /tmp/context.json --pets-epochs 5 --speed-epochs 1 \\
        --speed-repeats 1 --latency-epochs 1 --latency-prefixes 20 --archs lstm

Three measurements, each against a target of the issue that added `--context-turns N`:

1. Context is used. Synthetic conversations, English and Chinese, whose last reply needs the
   turn before the prompt ("i have a dog." / "what is your dog called?" / "rex." / "rex is a
   good name for a dog."). A share of the (animal, name) combinations is held out, each name
   and animal still seen in training in other combinations. Models are trained with N = 2 and
   N = 1; the context accuracy is the share of held-out last replies that come out exactly
   right from the model alone (retrieval off). Target: >= 90% at N = 2, chance (1 / animals)
   at N = 1. The same figure on the training conversations says whether a miss is a failure to
   use the context or to generalize to new combinations.
2. No slowdown. Seconds per training epoch of the default preset on data/chatterbot.tsv with
   the current code against the code before the context feature (commit cebcfdb, extracted with
   `git archive` into a temporary folder: nothing in this tree or its git state changes), each
   run a subprocess with its tree first on PYTHONPATH, the two alternated, 3 runs of 2 epochs
   each. Epochs during which other programs kept a quarter of a core busy are left out. The
   current tree holds other uncommitted work too: the noise gained a change (lead words) that
   lengthens the noisy copies, so the figure per input token is given as well, and a
   fingerprint of the examples before the noise checks that single-turn examples are
   unchanged. Target: ratio within noise.
3. Reply latency. The default corpus as conversations (chat JSONL built from the
   chatterbot-corpus YAML), a default-preset model trained at N = 1 and at N = 4 for the same
   epochs (2), then greedy replies to 300 conversation prefixes ending in a user turn, each
   timed alone after a warm-up, the models taking turns prefix by prefix: the model alone
   (retrieval off), the N = 4 model with its context off (the same weights reading the prompt
   alone), and on 80 prefixes the bot as `chatbot chat` replies (retrieval on, reranked).
   Target: p50 at N = 4 <= 2x p50 at N = 1.

Writes bench/context.json. Machine load is recorded at the start and end: on a shared machine
compare figures measured together.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "cebcfdb"  # the last commit before the context feature
DISTURBED = 0.25  # cores other programs kept busy above which a timed epoch is left out
DEFAULT_CORPUS = ROOT / "data/chatterbot.tsv"  # what `make data` writes
LANGUAGES = ("english", "chinese")  # as `make data` imports them

# --- 1. the pets: the last reply needs the turn before the prompt ----------------------------

PETS = {
    "english": {
        "animals": ("dog", "cat", "bird", "fish", "horse", "rabbit", "hamster", "turtle"),
        "names": ("rex", "max", "bella", "luna", "milo", "coco", "toby", "nala", "oscar",
                  "daisy"),
        "turns": ("i have a {animal}.", "what is your {animal} called?", "{name}.",
                  "{name} is a good name for a {animal}."),
    },
    "chinese": {
        "animals": ("狗", "猫", "鸟", "兔子", "仓鼠", "乌龟", "鹦鹉", "刺猬"),
        "names": ("小白", "旺财", "豆豆", "球球", "花花", "毛毛", "乐乐", "贝贝", "咪咪",
                  "团团"),
        "turns": ("我有一只{animal}。", "你的{animal}叫什么名字？", "{name}。",
                  "{name}这个名字很适合你的{animal}。"),
    },
}
HELD_OUT_OFFSETS = (0, 5)  # (name - animal) mod names: 2 of 10 names per animal, 20% held out


def pet_conversations(held_out: bool) -> list[list[tuple[str, str]]]:
    """The training (held_out=False) or test conversations of both languages, as
    (role, content) turns. Animal i holds out names i and i + 5 (mod 10): each name is held out
    for at most 2 of the 8 animals, so every name and animal is still trained on."""
    conversations = []
    for pets in PETS.values():
        names = pets["names"]
        for a, animal in enumerate(pets["animals"]):
            for n, name in enumerate(names):
                if ((n - a) % len(names) in HELD_OUT_OFFSETS) != held_out:
                    continue
                texts = [t.format(animal=animal, name=name) for t in pets["turns"]]
                conversations.append(list(zip(("user", "assistant") * 2, texts)))
    return conversations


def context_accuracy(bot, conversations: Sequence[Sequence[tuple[str, str]]]) -> float:
    """Share of the conversations whose last reply, which needs the turn before the prompt,
    the bot gets exactly right from the first three turns."""
    asked = [[{"role": r, "content": c} for r, c in conv[:3]] for conv in conversations]
    replies = bot.reply_batch(asked)
    return sum(r.text == conv[3][1] for r, conv in zip(replies, conversations)) / len(asked)


def pets_config(arch: str, context_turns: int, epochs: int):
    """The tests' tiny model (tests/conftest.py tiny_config), a little wider for two languages,
    settings chosen on the training conversations only."""
    from chatbot.config import preset

    config = preset("tiny")
    config.model.arch = arch
    config.model.hidden_dim = 128
    if arch == "transformer":
        config.model.embedding_dim, config.model.num_layers = 64, 2
        config.train.learning_rate = 2e-3
    config.data.context_turns = context_turns
    config.data.val_fraction = 0.0
    config.train.epochs = config.train.patience = epochs
    config.train.batch_size = 16
    config.train.probes = 0
    return config


def measure_pets(work: Path, archs: Sequence[str], epochs: int) -> dict[str, Any]:
    from chatbot.data.dialogue import write_conversations
    from chatbot.decoding.bot import Bot
    from chatbot.training.train import train

    train_convs, test_convs = pet_conversations(False), pet_conversations(True)
    data = work / "pets.jsonl"
    write_conversations(data, train_convs)
    animals = len(PETS["english"]["animals"])
    results: dict[str, Any] = {
        "conversations": {"train": len(train_convs), "test": len(test_convs)},
        "languages": list(PETS), "animals_per_language": animals,
        "names_per_language": len(PETS["english"]["names"]), "chance": round(1 / animals, 3),
        "epochs": epochs, "runs": {},
        "models": {arch: {"embedding_dim": c.model.embedding_dim, "hidden_dim": c.model.hidden_dim,
                          "num_layers": c.model.num_layers, "batch_size": c.train.batch_size,
                          "learning_rate": c.train.learning_rate}
                   for arch in archs for c in [pets_config(arch, 2, epochs)]},
        "accuracy": "the last reply exactly right from the first three turns, model alone "
                    "(retrieval off); test: held-out (animal, name) combinations",
        "chance_note": "with the prompt alone ('rex.') a name's reply is right for one of its "
                       "animals at most: 1 / animals over all combinations, names / training "
                       "combinations (15.6%) on the training conversations; a held-out "
                       "combination's reply was never seen, so without the context it scores "
                       "about 0",
    }
    for arch in archs:
        for n in (2, 1):
            out = work / f"pets-{arch}-n{n}"
            started = time.perf_counter()
            train(data, out, pets_config(arch, n, epochs), log=lambda _: None, verbose=0)
            seconds = time.perf_counter() - started
            bot = Bot.load(out)
            bot.configure(retrieval=False)  # the model alone: the memory knows the training set
            run = {"context_turns": n, "train_seconds": round(seconds, 1),
                   "test_accuracy": round(context_accuracy(bot, test_convs), 3),
                   "train_accuracy": round(context_accuracy(bot, train_convs), 3)}
            if n > 1:
                bot.configure(context=False)  # the same model, reading the prompt alone
                run["test_accuracy_context_off"] = round(context_accuracy(bot, test_convs), 3)
            results["runs"][f"{arch}_n{n}"] = run
            print(f"  pets {arch} N={n}: test {run['test_accuracy']:.1%}, train "
                  f"{run['train_accuracy']:.1%} ({seconds:.0f} s)", file=sys.stderr, flush=True)
    for arch in archs:
        two, one = results["runs"][f"{arch}_n2"], results["runs"][f"{arch}_n1"]
        # "At chance": not above it by more than one held-out conversation's share.
        slack = 1 / len(test_convs)
        results["runs"][f"{arch}_n2"]["target_met"] = two["test_accuracy"] >= 0.9
        results["runs"][f"{arch}_n1"]["target_met"] = one["test_accuracy"] <= 1 / animals + slack
        if two["test_accuracy"] < 0.9 <= two["train_accuracy"]:
            two["note"] = ("the training conversations are answered from their context, the "
                           "held-out combinations are not: the model uses the context but does "
                           "not generalize to new (animal, name) combinations")
    return results


# --- 2. training speed, before and after the context feature -----------------------------------

def time_training(data: str, out: str, epochs: int, context_turns: int) -> dict[str, Any]:
    """The worker: trains the default preset on `data` with whichever chatbot package is first
    on sys.path, timing each epoch (training and validation) with a callback, and how many
    cores other programs kept busy meanwhile. Trees from before the redesign (#26) evaluate the
    run in chatbot.train's _finish: that is skipped, it is not training, and the model file is
    written by then."""
    import keras

    import chatbot
    try:
        import chatbot.training.train as trainer
    except ImportError:  # a tree from before the redesign (#26): one flat folder
        import chatbot.train as trainer  # type: ignore[no-redef]
    from chatbot.config import preset

    marks: dict[str, Any] = {"epoch_s": [], "epoch_cpu_s": [], "other_cores_busy": []}
    # Only once chatbot is imported: harness puts this tree first on sys.path.
    from harness import cpu_seconds

    def epoch_end() -> None:
        seconds = time.perf_counter() - marks["epoch_start"]
        machine_s, own = (end - start for end, start in zip(cpu_seconds(), marks["cpu_start"]))
        marks["epoch_s"].append(round(seconds, 2))
        marks["epoch_cpu_s"].append(round(own, 2))
        marks["other_cores_busy"].append(None if machine_s is None
                                         else round((machine_s - own) / seconds, 2))

    def epoch_begin() -> None:
        marks["cpu_start"] = cpu_seconds()
        marks["epoch_start"] = time.perf_counter()

    fit = trainer._fit

    def timed_fit(model, distribution, train_data, val_data, done, last, callbacks, verbose):
        clock = keras.callbacks.LambdaCallback(
            on_train_begin=lambda logs: marks.setdefault("begin", time.perf_counter()),
            on_epoch_begin=lambda epoch, logs: epoch_begin(),
            on_epoch_end=lambda epoch, logs: epoch_end())
        examples = train_data.examples
        marks["examples"] = len(examples)
        marks["tokens"] = sum(len(inputs[0]) for inputs, _ in examples)
        marks["scored"] = train_data.scored_tokens
        # The examples of the training pairs themselves, before their noisy copies (which
        # differ between the trees: the noise gained a change since), as one fingerprint.
        clean = examples[: len(examples) // (1 + config.train.noise_copies)]
        marks["clean"] = hashlib.sha256(json.dumps(clean).encode()).hexdigest()[:16]
        return fit(model, distribution, train_data, val_data, done, last, [clock, *callbacks],
                   verbose)

    trainer._fit = timed_fit
    trainer._finish = lambda *args, **kwargs: None
    config = preset("default")
    config.train.epochs = epochs
    if context_turns > 1:  # the code before the context feature has no such setting
        config.data.context_turns = context_turns
    started = time.perf_counter()
    trainer.train(data, out, config, log=lambda _: None, verbose=0)
    ended = time.perf_counter()
    return {"package": str(Path(chatbot.__file__).parent), "train_examples": marks["examples"],
            "clean_examples_sha256": marks["clean"], "input_tokens_per_epoch": marks["tokens"],
            "scored_tokens_per_epoch": marks["scored"],
            "epoch_s": marks["epoch_s"], "epoch_cpu_s": marks["epoch_cpu_s"],
            "other_cores_busy": marks["other_cores_busy"],
            "setup_s": round(marks["begin"] - started, 2), "train_s": round(ended - started, 2)}


def spawn_training(tree: Path, data: Path, out: Path, epochs: int,
                   context_turns: int = 1) -> dict[str, Any]:
    """time_training() in a fresh process that imports the chatbot package of `tree`."""
    load = round(os.getloadavg()[0], 2)
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker-data", str(data),
               "--worker-out", str(out), "--worker-epochs", str(epochs),
               "--worker-context-turns", str(context_turns)]
    done = subprocess.run(command, cwd=tree, env=env, check=True, stdout=subprocess.PIPE,
                          text=True)
    run = {**json.loads(done.stdout.strip().splitlines()[-1]), "load_1min_at_start": load}
    if Path(run["package"]) != tree / "chatbot":
        raise SystemExit(f"a run meant for {tree} imported {run['package']}")
    return run


def extract_before(folder: Path) -> Path:
    """The chatbot package of commit BEFORE, read with `git archive` (which changes nothing)."""
    archive = subprocess.run(["git", "archive", "--format=tar", BEFORE, "chatbot"], cwd=ROOT,
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def measure_speed(work: Path, epochs: int, repeats: int) -> dict[str, Any]:
    trees = {"before": extract_before(work / "before"), "current": ROOT}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for repeat in range(repeats):
        # Alternate, and swap who goes first each repeat, so a drift in load hits both.
        order = list(trees) if repeat % 2 == 0 else list(reversed(trees))
        for name in order:
            run = spawn_training(trees[name], DEFAULT_CORPUS, work / f"speed-{name}-{repeat}",
                                 epochs)
            runs[name].append(run)
            print(f"  speed {name} #{repeat + 1}: epochs {run['epoch_s']} s", file=sys.stderr,
                  flush=True)
    # The first epoch of a run traces the step functions (about 4 s more in trial runs): the
    # steady epochs are the later ones. Wall time counts only epochs during which other programs
    # kept at most DISTURBED cores busy; CPU seconds of the training process, which other
    # programs disturb far less, count every steady epoch.
    summary = {}
    for name, rs in runs.items():
        epochs_seen = [(i, run["epoch_s"][i], run["epoch_cpu_s"][i], run["other_cores_busy"][i])
                       for run in rs for i in range(len(run["epoch_s"]))]
        steady = [e for e in epochs_seen if e[0] > 0] or epochs_seen
        quiet = [s for _, s, _, busy in steady if busy is None or busy <= DISTURBED]
        first = [s for i, s, _, busy in epochs_seen if i == 0 and (busy or 0) <= DISTURBED]
        cpu = statistics.median(c for _, _, c, _ in steady)
        tokens = rs[0]["input_tokens_per_epoch"]
        summary[name] = {
            "steady_epoch_s_median": round(statistics.median(quiet), 2) if quiet else None,
            "steady_epoch_s_min": min(quiet, default=None),
            "steady_epoch_s_max": max(quiet, default=None),
            "steady_epochs_quiet": len(quiet), "steady_epochs": len(steady),
            "steady_epoch_cpu_s_median": round(cpu, 2),
            "steady_epoch_cpu_s_spread": round(
                (max(c for _, _, c, _ in steady) - min(c for _, _, c, _ in steady)) / cpu, 3),
            "first_epoch_s_median": round(statistics.median(first), 2) if first else None,
            "cpu_ms_per_1k_input_tokens": round(1e6 * cpu / tokens, 2)}
    before, current = summary["before"], summary["current"]
    # Wall time when both trees had quiet steady epochs; else CPU seconds.
    basis = "wall" if before["steady_epochs_quiet"] and current["steady_epochs_quiet"] else "cpu"
    if basis == "wall":
        ratio = current["steady_epoch_s_median"] / before["steady_epoch_s_median"]
        noise = max((v["steady_epoch_s_max"] - v["steady_epoch_s_min"])
                    / v["steady_epoch_s_median"] for v in summary.values())
    else:
        ratio = current["steady_epoch_cpu_s_median"] / before["steady_epoch_cpu_s_median"]
        noise = max(v["steady_epoch_cpu_s_spread"] for v in summary.values())
    cpu_ratio = current["steady_epoch_cpu_s_median"] / before["steady_epoch_cpu_s_median"]
    same = {run["clean_examples_sha256"] for rs in runs.values() for run in rs}
    return {"before_commit": BEFORE, "data": str(DEFAULT_CORPUS.relative_to(ROOT)),
            "preset": "default", "epochs_per_run": epochs, "repeats": repeats,
            "disturbed_above_other_cores": DISTURBED, "runs": runs, "summary": summary,
            "same_examples_before_noise": len(same) == 1, "ratio_basis": basis,
            "ratio_current_over_before": round(ratio, 3),
            "cpu_ratio_current_over_before": round(cpu_ratio, 3),
            "cpu_ratio_per_input_token": round(current["cpu_ms_per_1k_input_tokens"]
                                               / before["cpu_ms_per_1k_input_tokens"], 3),
            "noise_spread_within_a_tree": round(noise, 3),
            "target_met": abs(ratio - 1) <= max(noise, 0.05)}


# --- 3. reply latency at N = 4 against N = 1 ----------------------------------------------------

def chatterbot_jsonl(path: Path) -> dict[str, int]:
    """The default corpus as conversations (turns user, assistant, user, ...) in chat JSONL."""
    from chatbot.corpora.chatterbot import ImportReport, as_messages, chatterbot_conversations
    from chatbot.data.dialogue import write_conversations

    conversations = chatterbot_conversations(LANGUAGES, ImportReport())
    written = write_conversations(path, map(as_messages, conversations))
    return {"conversations": written, "turns": sum(map(len, conversations)),
            "longest_conversation_turns": max(map(len, conversations))}


def user_prefixes(path: Path, count: int, seed: int) -> list[list[dict[str, str]]]:
    """Up to `count` conversation prefixes that end in a user turn, drawn with `seed`."""
    from chatbot.data.dialogue import read_conversations

    prefixes = [[{"role": m.role, "content": m.content} for m in conv.messages[: end + 1]]
                for conv in read_conversations(path)
                for end, m in enumerate(conv.messages) if m.role == "user"]
    random.Random(seed).shuffle(prefixes)
    return prefixes[:count]


def time_replies(bots: dict[str, Any], prefixes: Sequence[list[dict[str, str]]],
                 warmup: int) -> dict[str, dict[str, Any]]:
    """Each prefix's reply timed alone, by every bot in turn (so that a change in the load of a
    shared machine hits all of them alike), after `warmup` untimed replies each."""
    from harness import ms

    for bot in bots.values():
        for prefix in prefixes[:warmup]:
            bot.reply(prefix)
    seconds: dict[str, list[float]] = {name: [] for name in bots}
    replied: dict[str, list[int]] = {name: [] for name in bots}
    for prefix in prefixes:
        for name, bot in bots.items():
            started = time.perf_counter()
            reply = bot.reply(prefix)
            seconds[name].append(time.perf_counter() - started)
            replied[name].append(len(reply.tokens))
    figures = {}
    for name, bot in bots.items():
        read = [len(bot.prompt_tokens(prefix)) for prefix in prefixes]
        s, r = seconds[name], replied[name]
        figures[name] = {
            "replies": len(s), "p50_ms": ms(s, 50),
            "p90_ms": ms(s, 90),
            "mean_ms": round(1000 * statistics.fmean(s), 2),
            # Per token the model reads or writes (prompt, reply and its <EOS>).
            "ms_per_token": round(1000 * sum(s) / (sum(read) + sum(r) + len(r)), 3),
            "mean_prompt_tokens": round(statistics.fmean(read), 2), "max_prompt_tokens": max(read),
            "mean_reply_tokens": round(statistics.fmean(r), 2)}
    return figures


def measure_latency(work: Path, epochs: int, count: int, chat_count: int,
                    warmup: int) -> dict[str, Any]:
    from chatbot.decoding.bot import Bot

    data = work / "chatterbot.jsonl"
    corpus = chatterbot_jsonl(data)
    prefixes = user_prefixes(data, count, seed=1234)
    training = {f"n{n}": spawn_training(ROOT, data, work / f"latency-n{n}", epochs,
                                        context_turns=n) for n in (1, 4)}
    bots = {name: Bot.load(work / f"latency-{name}") for name in training}
    # The N = 4 model reading the prompt alone: the same weights, so what the context costs.
    bots["n4_context_off"] = Bot.load(work / "latency-n4")
    for name, bot in bots.items():
        bot.configure(strategy="greedy", retrieval=False, context=name != "n4_context_off")
    alone = time_replies(bots, prefixes, warmup)
    for bot in bots.values():  # as `chatbot chat` replies: known replies join, reranked
        bot.configure(retrieval=True)
    as_chat = time_replies({name: bots[name] for name in training}, prefixes[:chat_count],
                           warmup)
    results: dict[str, Any] = {
        "data": corpus, "preset": "default", "epochs": epochs, "prefixes": len(prefixes),
        "prefixes_with_earlier_turns": sum(len(p) > 1 for p in prefixes),
        "chat_prefixes": min(chat_count, len(prefixes)), "warmup_replies": warmup,
        "strategy": "greedy", "training": training, "model_alone": alone, "as_chat": as_chat}
    for mode in ("model_alone", "as_chat"):
        ratio = results[mode]["n4"]["p50_ms"] / results[mode]["n1"]["p50_ms"]
        results[f"p50_ratio_n4_over_n1_{mode}"] = round(ratio, 3)
        results[f"target_met_{mode}"] = ratio <= 2.0
    print(f"  latency p50 N=1 -> N=4: model alone {alone['n1']['p50_ms']} -> "
          f"{alone['n4']['p50_ms']} ms, as chat {as_chat['n1']['p50_ms']} -> "
          f"{as_chat['n4']['p50_ms']} ms", file=sys.stderr, flush=True)
    return results


# --- the table -----------------------------------------------------------------------------------

def table(results: dict[str, Any]) -> str:
    rows = [("measurement", "figure", "target", "met")]
    pets = results.get("pets")
    if pets:
        for key, run in pets["runs"].items():
            arch, n = key.rsplit("_n", 1)
            target = ">= 90%" if n != "1" else f"chance {pets['chance']:.1%}"
            rows.append((f"context accuracy {arch} N={n} (held out)",
                         f"{run['test_accuracy']:.1%} (train {run['train_accuracy']:.1%})",
                         target, "yes" if run["target_met"] else "no"))
            if "test_accuracy_context_off" in run:
                rows.append(("  same model, context off",
                             f"{run['test_accuracy_context_off']:.1%}", "", ""))
    speed = results.get("speed")
    if speed:
        s = speed["summary"]
        basis = speed["ratio_basis"]
        key = "steady_epoch_s_median" if basis == "wall" else "steady_epoch_cpu_s_median"
        rows.append((f"epoch {'s' if basis == 'wall' else 'CPU s'}, default preset: "
                     "before -> current",
                     f"{s['before'][key]} -> {s['current'][key]} "
                     f"(x{speed['ratio_current_over_before']})",
                     f"within noise ({speed['noise_spread_within_a_tree']:.0%})",
                     "yes" if speed["target_met"] else "no"))
        rows.append(("  epoch CPU s before -> current",
                     f"{s['before']['steady_epoch_cpu_s_median']} -> "
                     f"{s['current']['steady_epoch_cpu_s_median']} "
                     f"(x{speed['cpu_ratio_current_over_before']}; per input token "
                     f"x{speed['cpu_ratio_per_input_token']})", "", ""))
        rows.append(("  quiet steady epochs before, current",
                     f"{s['before']['steady_epochs_quiet']} of {s['before']['steady_epochs']}, "
                     f"{s['current']['steady_epochs_quiet']} of {s['current']['steady_epochs']}",
                     "", ""))
        rows.append(("  same examples before the noise", str(speed["same_examples_before_noise"]),
                     "", ""))
    latency = results.get("latency")
    if latency:
        for mode in ("model_alone", "as_chat"):
            one, four = latency[mode]["n1"], latency[mode]["n4"]
            rows.append((f"reply p50/p90 ms N=1 -> N=4 ({mode.replace('_', ' ')})",
                         f"{one['p50_ms']}/{one['p90_ms']} -> {four['p50_ms']}/{four['p90_ms']} "
                         f"(x{latency[f'p50_ratio_n4_over_n1_{mode}']})",
                         "p50 <= 2x", "yes" if latency[f"target_met_{mode}"] else "no"))
        alone = latency["model_alone"]
        rows.append(("  N=4 model, context off: p50/p90 ms",
                     f"{alone['n4_context_off']['p50_ms']}/{alone['n4_context_off']['p90_ms']}",
                     "", ""))
        for key, label in (("mean_prompt_tokens", "mean prompt tokens read"),
                           ("mean_reply_tokens", "mean reply tokens"),
                           ("ms_per_token", "ms per token read or written")):
            rows.append((f"  {label} N=1 -> N=4 (off)", f"{alone['n1'][key]} -> "
                         f"{alone['n4'][key]} ({alone['n4_context_off'][key]})", "", ""))
        training = latency["training"]
        rows.append(("  train epoch s N=1 -> N=4 (conversations)",
                     f"{training['n1']['epoch_s']} -> {training['n4']['epoch_s']}", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", default="bench/context.json")
    parser.add_argument("--archs", nargs="+", default=["lstm", "transformer"],
                        help="architectures trained on the pets")
    parser.add_argument("--pets-epochs", type=int, default=150)
    parser.add_argument("--speed-epochs", type=int, default=2)
    parser.add_argument("--speed-repeats", type=int, default=3)
    parser.add_argument("--latency-epochs", type=int, default=2)
    parser.add_argument("--latency-prefixes", type=int, default=300)
    parser.add_argument("--chat-prefixes", type=int, default=80,
                        help="prefixes timed with retrieval on (it reranks: slower)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--skip", nargs="*", default=[], choices=("pets", "speed", "latency"))
    # The training worker (spawn_training), run in a fresh process.
    parser.add_argument("--worker-data", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    parser.add_argument("--worker-epochs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-context-turns", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker_data:
        print(json.dumps(time_training(args.worker_data, args.worker_out, args.worker_epochs,
                                       args.worker_context_turns)))
        return 0
    # Not at the top: harness puts this tree first on sys.path, and the speed worker must
    # import the chatbot package of the tree it was started for.
    from harness import load_average, machine, write_results
    if "speed" not in args.skip and not DEFAULT_CORPUS.exists():
        raise SystemExit(f"{DEFAULT_CORPUS} is missing: run `make data` first")

    load_at_start = load_average()
    started = time.perf_counter()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-context-") as tmp:
        work = Path(tmp)
        if "speed" not in args.skip:  # first, while TensorFlow is not loaded in this process
            results["speed"] = measure_speed(work, args.speed_epochs, args.speed_repeats)
        if "pets" not in args.skip:
            results["pets"] = measure_pets(work, args.archs, args.pets_epochs)
        if "latency" not in args.skip:
            results["latency"] = measure_latency(work, args.latency_epochs,
                                                 args.latency_prefixes, args.chat_prefixes,
                                                 args.warmup)
    results["machine"] = machine(load_at_start)
    results["settings"] = {k: v for k, v in vars(args).items() if not k.startswith("worker_")}
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    with contextlib.redirect_stdout(sys.stderr):
        write_results(args.output, results)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
