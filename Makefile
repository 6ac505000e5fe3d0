# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
OUT    := out

.PHONY: install run test bench lint demo-model clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The main job on the built-in demo: map it, prune it to half its FLOPs, show the report.
run: $(STAMP)
	$(VENV)/bin/pruning-studio inspect demo
	$(VENV)/bin/pruning-studio prune demo --flops-target 0.5 --out $(OUT)/demo-half
	$(VENV)/bin/pruning-studio inspect $(OUT)/demo-half | head -1

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

bench: $(STAMP)
	cd benchmarks && ../$(PY) bench_counting.py && ../$(PY) bench_scoring.py && \
	  ../$(PY) bench_finetune.py && ../$(PY) bench_criteria.py && ../$(PY) render_docs.py

lint: $(STAMP)
	$(VENV)/bin/ruff check studio tests benchmarks scripts

# Rebuild the demo's data file and checkpoint (deterministic, about a minute on a CPU).
demo-model: $(STAMP)
	$(PY) scripts/make_demo.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
