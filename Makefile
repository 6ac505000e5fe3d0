# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
OUT    := out

.PHONY: install run run-headless screenshots test bench lint soak reliability models demo-model clean \
	wheel bundle install-desktop

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The studio window with the built-in demo loaded.
run: $(STAMP)
	$(VENV)/bin/pruning-studio gui demo --data demo

# The headless main job: map the demo, prune it to half its FLOPs, show the result.
run-headless: $(STAMP)
	$(VENV)/bin/pruning-studio inspect demo
	$(VENV)/bin/pruning-studio prune demo --flops-target 0.5 --out $(OUT)/demo-half
	$(VENV)/bin/pruning-studio inspect $(OUT)/demo-half | head -1

# Real screenshots of the window for the docs, at a laptop's 1366x768 (needs xvfb-run);
# the report's first page through a headless Chromium when one is installed.
SHOT := xvfb-run -a -s "-screen 0 1920x1080x24" $(VENV)/bin/pruning-studio gui
screenshots: $(STAMP)
	$(SHOT) --show start --size 1366x768 --screenshot docs/images/window-start.png
	$(SHOT) demo --flops-target 0.5 --focus layer2.0.conv2 --size 1366x768 --screenshot docs/images/window-demo.png
	$(SHOT) demo --flops-target 0.5 --tour --show charts --size 1366x768 --screenshot docs/images/window-finetune.png
	$(SHOT) demo --flops-target 0.5 --tour --show compare --size 1366x768 --screenshot docs/images/window-compare.png
	$(SHOT) demo --pipeline search --show pipeline --size 1366x768 --screenshot docs/images/window-pipeline.png
	$(SHOT) resnet50 --flops-target 0.5 --find layer3.2.conv2:17 --size 1366x768 --screenshot docs/images/window-resnet50.png
	$(SHOT) resnet50 --flops-target 0.5 --find layer4.0.conv2 --size 1920x1080 --screenshot docs/images/window-resnet50-1080.png
	mkdir -p $(OUT)/walk && xvfb-run -a -s "-screen 0 1366x768x24" $(PY) scripts/walkthrough.py $(OUT)/walk
	cp $(OUT)/walk/walk-*.png docs/images/
	if command -v chromium >/dev/null; then chromium --headless --no-sandbox --disable-gpu \
	  --hide-scrollbars --window-size=1000,1400 --screenshot=docs/images/walk-6-report.png \
	  file://$(CURDIR)/$(OUT)/walk/walk-report.html 2>/dev/null; fi
	rm -rf $(OUT)/shot-demo $(OUT)/shot-demo-ft
	$(VENV)/bin/pruning-studio prune demo --flops-target 0.5 --out $(OUT)/shot-demo
	$(VENV)/bin/pruning-studio finetune $(OUT)/shot-demo --data demo --epochs 3 --out $(OUT)/shot-demo-ft
	$(VENV)/bin/pruning-studio export $(OUT)/shot-demo-ft --report $(OUT)/report.html --data demo --latency
	if command -v chromium >/dev/null; then chromium --headless --no-sandbox --disable-gpu \
	  --hide-scrollbars --window-size=1000,1400 --screenshot=docs/images/report.png \
	  file://$(CURDIR)/$(OUT)/report.html 2>/dev/null; fi

# Lint, format and the architecture's import rules first, then the suite.
test: $(STAMP)
	$(VENV)/bin/ruff check studio tests benchmarks scripts
	$(VENV)/bin/ruff format --check studio tests benchmarks scripts
	$(VENV)/bin/lint-imports
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

# A long soak of the real window: random user actions (tests/soak.py).
SOAK_ACTIONS ?= 1500
SOAK_SEED ?= 7
soak: $(STAMP)
	SOAK_ACTIONS=$(SOAK_ACTIONS) SOAK_SEED=$(SOAK_SEED) SOAK_LOG=benchmarks/results/soak.json \
	  QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider --timeout 10800 \
	  tests/test_gui.py -k soak

# docs/reliability.md: the bad-input corpus, the kill -9 drill (10 kills per command).
reliability: $(STAMP)
	$(PY) benchmarks/reliability.py --kills 10

# docs/models.md: timm families and public CIFAR zoos' code (benchmarks/models.py says where
# the zoos go; without them only timm is run).
models: $(STAMP)
	$(PY) benchmarks/models.py

bench: $(STAMP)
	cd benchmarks && ../$(PY) run_all.py

lint: $(STAMP)
	$(VENV)/bin/ruff check studio tests benchmarks scripts
	$(VENV)/bin/ruff format --check studio tests benchmarks scripts
	$(VENV)/bin/lint-imports

# A wheel and an sdist that carry the demo, icons and desktop files (dist/).
wheel: $(STAMP)
	$(PY) -m pip wheel --no-deps --no-build-isolation -w dist .
	$(PY) -m pip install -q build 2>/dev/null; $(PY) -m build --sdist --no-isolation -o dist .

# The studio in this user's application menu, opening .pt/.pth files and recipes (Linux).
install-desktop: $(STAMP)
	$(VENV)/bin/pruning-studio install-desktop

# A one-folder app for people without Python (PyInstaller; minutes, gigabytes: see
# packaging/README.md). Then: dist/pruning-studio/pruning-studio
bundle: $(STAMP)
	$(PY) -m pip install -q pyinstaller
	$(VENV)/bin/pyinstaller --noconfirm --distpath dist --workpath build/pyinstaller \
	  packaging/pruning-studio.spec

# Rebuild the demo's data file and checkpoint (deterministic, about a minute on a CPU).
demo-model: $(STAMP)
	$(PY) scripts/make_demo.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
