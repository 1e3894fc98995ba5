# Two commands set everything up on a fresh clone: `make chat` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   := data/chatterbot.tsv
MODEL  := models/default
TRAIN_FLAGS ?=
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install data train retrain chat plot test test-fast lint bench bench-decode bench-train \
        bench-throughput bench-quality bench-honest bench-transformer bench-importers \
        bench-context bench-serve bench-products bench-archs bench-report \
        tensorboard bench-tensorboard bench-scale bench-two-workers notebook bench-notebook clean

install: $(BIN)/chatbot
$(BIN)/chatbot: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

data: $(DATA)
# The ChatterBot corpus and our own pairs on the bot and the ideas it is built from (corpus/).
$(DATA): corpus/about.tsv | $(BIN)/chatbot
	$(BIN)/chatbot data import-chatterbot --lang english chinese --add corpus/about.tsv -o $(DATA)

# `make train` brings models/default to a finished run: it trains one if there is none, resumes
# one that was interrupted (Ctrl-C, kill, power cut), and does nothing once training finished.
# The run directory, not a file target, says which (chatbot/rundir.py): make never takes a half
# run for a finished one, nor deletes anything on Ctrl-C. `make retrain` starts over.
# Training stops when the model has learned what it is for (the stop rule, train.stop_at: the
# answer rates of a sample of known prompts and of their typing variants), not on the clock, so
# a busy machine takes longer but gives the same bot: 2 to 4 minutes here. TRAIN_MINUTES=M
# adds a safety cap (the epoch that ends past M minutes is the last; the best model is kept).
# Then the run's report card, $(MODEL)/report.html (`chatbot report`: settings, curves, metrics,
# answer rates, sample replies, attention, embedding map), is written if a file of the run other
# than a picture is newer than it (taught pairs change the replies too); its path is printed.
TRAIN_MINUTES ?= 0
REPORT = $(MODEL)/report.html
train: | $(DATA)
	$(BIN)/chatbot train --data $(DATA) --out $(MODEL) --if-needed --max-minutes $(TRAIN_MINUTES) \
	    $(TRAIN_FLAGS)
	@if [ ! -f $(REPORT) ] || \
	    [ -n "$$(find $(MODEL) -maxdepth 1 -type f ! -name '*.png' -newer $(REPORT))" ]; then \
	    $(BIN)/chatbot report $(MODEL) -o $(REPORT); \
	else echo "report card: $(REPORT) (up to date)"; fi

# For targets that name the model file: `make train` runs first, every time (it is phony), so the
# file is never taken as done while its run is unfinished.
$(MODEL)/model.keras: train

retrain: | $(DATA)
	$(BIN)/chatbot train --data $(DATA) --out $(MODEL) --overwrite --max-minutes $(TRAIN_MINUTES) \
	    $(TRAIN_FLAGS)

chat: train
	$(BIN)/chatbot chat --model $(MODEL)

plot: train
	$(BIN)/chatbot plot $(MODEL) -o $(MODEL)/curves.png

# TensorBoard on every run in models/ (each run's runs/ folder: scalars, probe replies, the
# embedding projector, the settings as HParams; chatbot/training/tensorboard.py), at
# http://localhost:6006 until Ctrl-C. TB_LOGDIR=DIR opens another folder.
TB_LOGDIR ?= models
tensorboard: $(BIN)/chatbot
	$(BIN)/tensorboard --logdir $(TB_LOGDIR)

# The tests run in TEST_WORKERS processes (pytest-xdist; TEST_WORKERS=0 runs them in this one),
# two for the two cores `make test` must finish on within 6 minutes from a fresh clone, install
# included (the shortest training runs step eagerly, and each process's TensorFlow and BLAS
# keep to its share of the cores: tests/conftest.py).
# worksteal: a process that runs out of tests takes some of the other's, so that both end
# together. A plain `pytest tests/...` runs in one process, as usual.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

test: $(BIN)/chatbot
	$(PYTEST)

test-fast: $(BIN)/chatbot
	$(PYTEST) -m "not slow"

# Benchmarks print and save their figures as JSON under bench/; they are not tests.
bench: bench-decode bench-train bench-quality

bench-decode: $(MODEL)/model.keras
	$(BIN)/python bench/decode.py --model $(MODEL) --data $(DATA) -o bench/decode.json

# Time to quality (#27): the default `make train` against the one of the code before the issue
# (a git worktree), side by side in one run and alternated twice, then again with a second
# CPU-bound process running, then a fresh clone's `make chat` timed to its first reply: about
# 35 minutes on 2 CPU cores. Writes bench/time_to_quality.json.
bench-train: $(BIN)/chatbot $(DATA)
	$(BIN)/python bench/time_to_quality.py -o bench/time_to_quality.json

# Training throughput of the pipelines (padded, bucketed, tf.data, fit() against our loop),
# needs the venv and the default data; about 25 minutes on 2 CPU cores. The English-French parts
# (fra-eng comparison, XLA, scaling) read ../shared/data/fra-eng.tsv: when it is missing they are
# skipped with a message (and marked "skipped" in the JSON), and the default corpus still runs.
bench-throughput: $(BIN)/chatbot $(DATA)
	$(BIN)/python bench/train.py -o bench/train.json

# Answer rates on known prompts and their typing variants, latency, and replies to unseen prompts,
# for the model alone, the hybrid (retrieval) and a closest-match baseline, and bench-honest's
# figures as its "honest" section; about 20 minutes on 2 CPU cores, 5 of them training an
# English-French model in bench/.work/ for the unseen prompts (skipped with a message when
# ../shared/data/fra-eng.tsv is missing).
bench-quality: $(MODEL)/model.keras
	$(BIN)/python bench/quality.py --model $(MODEL) --data $(DATA) -o bench/quality.json

# Honest replies (#25): known prompts said exactly as the data wrote them, typing variants, the
# fallback on out-of-domain prompts (bench/ood/test.txt), how well the confidence ranks replies,
# teaching (in a copy of the run under bench/.work/), and latency against the code from before
# the issue (a git worktree of 6154e71, removed at the end); about 5 minutes on 2 CPU cores.
# The defaults of min_confidence and ambiguity are chosen by bench/choose.py, on dev data only.
bench-honest: $(MODEL)/model.keras
	$(BIN)/python bench/honest.py --model $(MODEL) --data $(DATA) -o bench/honest.json

# The transformer against the lstm, in one run: quality at equal training time (2 minutes per
# model and dataset, `--minutes M` to change it) on the default corpus and on English-French
# pairs (skipped with a message when ../shared/data/fra-eng.tsv is missing), training speed of
# our loop against a keras-io style fit(), and decoding speed; about 30 minutes on 2 CPU cores,
# a third of it chatbot train's own evaluation of each run. Runs go to bench/.work/transformer/.
bench-transformer: $(BIN)/chatbot $(DATA)
	$(BIN)/python bench/transformer.py -o bench/transformer.json

# The corpus importers on synthetic corpora of the real ones' sizes (Cornell Movie-Dialogs,
# DailyDialog, a turns text), generated in a temporary folder: time and peak memory, and
# whether the Cornell import streams; about a minute on 2 CPU cores.
bench-importers: $(BIN)/chatbot
	$(BIN)/python bench/importers.py -o bench/importers.json

# Whether --context-turns is used and what it costs: context accuracy on synthetic pet
# conversations (English and Chinese, held-out name/animal combinations, lstm and transformer,
# N = 2 against N = 1), seconds per training epoch against the code before the feature
# (commit cebcfdb, read with git archive), and reply latency at N = 4 against N = 1 on the default
# corpus as conversations; about 15 minutes on 2 CPU cores. Runs go to a temporary folder.
bench-context: $(BIN)/chatbot $(DATA)
	$(BIN)/python bench/context.py -o bench/context.json

# Architectures at equal training time on English-French pairs (#26: gru against lstm): about
# 15 minutes for two rounds of two architectures. Runs go to bench/.work/archs/.
bench-archs: $(BIN)/chatbot
	$(BIN)/python bench/archs.py --archs lstm gru --minutes 2 --rounds 2 -o bench/archs.json

# `chatbot serve` measured from client threads: latency and time to the first streamed token at
# concurrency 1, replies per second at 1 and 16, errors, and the server's memory over 10,000
# requests. Serves models/default when it has finished training, else a run it trains once in
# bench/.work/serve (2 minutes); about 10 minutes on 2 CPU cores.
bench-serve: $(BIN)/chatbot $(DATA)
	$(BIN)/python bench/serve.py -o bench/serve.json

# What multiplying a few rows in blocks of columns saves (chatbot.models.kernels.matmul): the products
# alone, and Bot.reply_batch of models/default in batches of 1 to 16; about 2 minutes.
bench-products: $(BIN)/chatbot $(DATA)
	$(BIN)/python bench/small_products.py -o bench/small_products.json

# How long `chatbot report` takes on the run (a fresh process per round, 5 rounds) and where the
# time goes, and the size of the page it writes; about a minute. Writes bench/report.json.
bench-report: $(MODEL)/model.keras
	$(BIN)/python bench/report.py --model $(MODEL) -o bench/report.json

# What TensorBoard logs cost: chatbot train's training (default preset, default corpus, 3
# epochs) with and without them, alternated, a fresh process each, 4 rounds, then the gradient
# norm's cost in a step alone; about 12 minutes on 2 idle CPU cores. Writes
# bench/tensorboard.json.
bench-tensorboard: $(BIN)/chatbot $(DATA)
	$(BIN)/python bench/tensorboard_overhead.py -o bench/tensorboard.json

# How the cost grows with the corpus (#28), on synthetic corpora shaped like the default one
# (bench/synthetic.py) of SCALE_SIZES pairs, written to bench/.work/scale/ and kept (about 1 GB
# at 10M, 3 GB more of shards): wall and CPU seconds and peak RSS of `data check`, of reading and
# tokenizing alone, of `data prepare` (default, and --noise-copies 0) and of training 50 steps
# from the shards; steps per second from shards against in memory (at 100k); `chatbot reply`
# and `chatbot serve` start-up (at 1M). Each step alone in a child process; sizes measured
# before are kept. Hours on 2 shared CPU cores, most of them at 10M. Writes
# bench/scale.json and bench/scale.png.
SCALE_SIZES ?= 10k 100k 1M 10M
bench-scale: $(BIN)/chatbot $(DATA)
	$(BIN)/python bench/scale.py --sizes $(SCALE_SIZES) -o bench/scale.json --figure bench/scale.png

# Two workers against one with twice the batch (#28): the English-French pairs
# (../shared/data/fra-eng.tsv, else DATA) prepared into shards in bench/.work/two_workers/, one
# directory per worker holding its own shards alone; per seed, two `chatbot train --strategy
# multiworker` processes (TF_CONFIG on 127.0.0.1, batch 32 each) and one with batch 64, the same
# steps; validation loss per epoch, wall and CPU seconds, peak RSS, and the shards each process
# opened (/proc/PID/fd). About 15 minutes on 2 shared CPU cores. Writes bench/two_workers.json.
bench-two-workers: $(BIN)/chatbot $(DATA)
	$(BIN)/python bench/two_workers.py -o bench/two_workers.json

# The notebook tour of the ideas (notebooks/tour.ipynb: tokens to decoding, on models it trains
# itself): run top to bottom in a fresh kernel of the venv by nbclient's jupyter-execute, which
# fails on the first cell that raises; the copy with its outputs is notebooks/.out/tour.ipynb (the
# notebook in git has none). Under 2 minutes on 2 busy CPU cores; open either in Jupyter.
notebook: $(BIN)/chatbot
	@mkdir -p notebooks/.out
	$(BIN)/jupyter-execute notebooks/tour.ipynb --output=.out/tour --timeout=600

# How long the tour takes: 3 rounds in full and 1 in quick mode (the test's), a fresh kernel
# each, with the load average; about 7 minutes on 2 CPU cores. Writes bench/notebook.json.
bench-notebook: $(BIN)/chatbot
	$(BIN)/python bench/notebook.py -o bench/notebook.json

lint: $(BIN)/chatbot
	$(BIN)/ruff check chatbot tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
