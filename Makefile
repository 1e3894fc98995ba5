# Two commands set everything up on a fresh clone: `make chat` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   := data/chatterbot.tsv
MODEL  := models/default
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install data train retrain chat plot test test-fast lint bench bench-decode bench-train clean

install: $(BIN)/chatbot
$(BIN)/chatbot: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

data: $(DATA)
$(DATA): | $(BIN)/chatbot
	$(BIN)/chatbot data import-chatterbot --lang english chinese -o $(DATA)

# Trains only if models/default has no model yet; `make retrain` replaces it.
train: $(MODEL)/model.keras
$(MODEL)/model.keras: | $(DATA)
	$(BIN)/chatbot train --data $(DATA) --out $(MODEL) --overwrite

retrain: $(DATA)
	$(BIN)/chatbot train --data $(DATA) --out $(MODEL) --overwrite

chat: $(MODEL)/model.keras
	$(BIN)/chatbot chat --model $(MODEL)

plot: $(MODEL)/model.keras
	$(BIN)/chatbot plot $(MODEL) -o $(MODEL)/curves.png

test: $(BIN)/chatbot
	$(BIN)/python -m pytest

test-fast: $(BIN)/chatbot
	$(BIN)/python -m pytest -m "not slow"

# Benchmarks print and save their figures as JSON under bench/; they are not tests.
bench: bench-decode bench-train

bench-decode: $(MODEL)/model.keras
	$(BIN)/python bench/decode.py --model $(MODEL) --data $(DATA) -o bench/decode.json

# Needs the venv, the default data and ../shared/data/fra-eng.tsv; about 25 minutes on 2 CPU cores.
bench-train: $(BIN)/chatbot $(DATA)
	$(BIN)/python bench/train.py -o bench/train.json

lint: $(BIN)/chatbot
	$(BIN)/ruff check chatbot tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
