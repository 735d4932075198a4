# Every target creates .venv on first use and installs the project into it.
VENV   ?= .venv
# test processes (pytest-xdist); each file's tests run in one of them (--dist loadfile)
TEST_WORKERS ?= 2
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev

.PHONY: help install demo test test-all test-fast lint bench gpu-check clean

help:
	@echo "make demo       offline demo: trains a small style model, checks it on 2 held-out photos (~6 min on 2 CPU cores)"
	@echo "make test       every test but the slowest real-component ones (heavy, browser, SLURM)"
	@echo "make test-all   every test: also the heavy, headless-Chromium and SLURM ones (what CI runs)"
	@echo "make test-fast  unit tests only (skips end-to-end subprocess tests)"
	@echo "make lint       ruff"
	@echo "make bench      scripts/benchmark.py part=all (benchmarks/)"
	@echo "make gpu-check  scripts/benchmark.py part=gpu: training and stylize speed on a CUDA GPU (one line without one; docs/gpu.md)"

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -e ".[dev,export]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) train.py experiment=demo

test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slurm and not browser and not heavy" --durations=20

# then the slowest real-component tests: the heaviest end-to-end runs and the headless
# Chromium pages; the SLURM tests share one cluster per session, so they run in a session of their own
test-all: test
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "(browser or heavy) and not slurm" --durations=10
	$(PY) -m pytest -m slurm --durations=10

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check src benchmarks studies tests scripts train.py stylize.py live.py optimize.py

bench: $(STAMP)
	$(PY) scripts/benchmark.py part=all

gpu-check: $(STAMP)
	$(PY) scripts/benchmark.py part=gpu

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
