# avs_lib — two commands matter: `make report` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= cpu
# Empty: the profile's own data root (avs_lib.datatools.profiles.PROFILES; cpu: data/synth, generated when missing).
DATA_ROOT ?=
RUNS_DIR ?= runs
DEVICE ?= auto
RESNET_WEIGHTS ?=
VGGISH_WEIGHTS ?=
METHODS ?=
SEEDS ?=
# Runs train at once: one per CPU core as memory allows (2 GiB each), one on a GPU
# (experiments.default_jobs; notebook 03's JOBS parameter overrides it).
# Where a report other than the committed cpu one goes (default reports/PROFILE/); KEEP_STALE=1
# reuses finished runs made by other code; SET="data.dataset=ms3 ..." overrides every run's config.
OUT ?=
KEEP_STALE ?=
SET ?=

.PHONY: help install lock quick verify-report browser-deps smoke-notebooks report data check-data notebooks test test-fast test-browser lint bench clean html slides slides-screenshots browser-screenshots

help:
	@echo "make report   # install, generate synthetic AVSBench data, run the notebooks (PROFILE=$(PROFILE))"
	@echo "make test     # install, run the whole test suite"
	@echo "make quick    # the whole report on the tiny smoke profile, in reports/quick/ (a few minutes)"

# The exact versions that made the committed report (pip-compile of pyproject.toml's ranges, with
# the dev, browser and slides extras; `make lock` remakes it). LOCK= installs from the ranges instead.
LOCK ?= requirements.lock

# A stamp file makes the install idempotent: it is redone only when pyproject.toml or the lock changes.
$(VENV)/.installed: pyproject.toml $(LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(if $(LOCK),$(PY) -m pip install --quiet -r $(LOCK) && $(PY) -m pip install --quiet --no-deps -e .,$(PY) -m pip install --quiet -e '.[dev,slides]')
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

install: $(VENV)/.installed

# Remake the lock from pyproject.toml's ranges (the newest versions the registries serve), then
# `make install` installs them; the report made with them is the one to commit beside the lock.
lock:
	$(PY) -m pip install --quiet pip-tools
	$(PY) -m piptools compile --quiet --extra dev --extra browser --extra slides --strip-extras --no-emit-index-url \
	  --no-emit-find-links -o requirements.lock pyproject.toml

# Retrain a few runs of the committed cpu grid from scratch (fresh data and pretraining, in
# $(VERIFY_DIR)) and compare them with figures/results.csv within the README's tolerance.
VERIFY_DIR ?= reports/verify
VERIFY_METHODS ?= tpavi thesis
VERIFY_SEEDS ?= 0
verify-report: install
	$(PY) tools/verify_report.py --work $(VERIFY_DIR) --methods $(VERIFY_METHODS) --seeds $(VERIFY_SEEDS)

# The profile's data (generated once when synthetic), checked file by file, and its encoders'
# starting weights (pretrained once on the synthetic train split for cpu and smoke).
data: install
	$(PY) -m avs_lib prepare --profile $(PROFILE) $(if $(DATA_ROOT),--data-root $(DATA_ROOT)) \
	  $(if $(RESNET_WEIGHTS),--resnet-weights $(RESNET_WEIGHTS)) $(if $(VGGISH_WEIGHTS),--vggish-weights $(VGGISH_WEIGHTS))

check-data: install
	$(PY) -m avs_lib check-data $(or $(DATA_ROOT),data/synth)

notebooks: install
	$(PY) -m avs_lib report --profile $(PROFILE) $(if $(DATA_ROOT),--data-root $(DATA_ROOT)) --runs-dir $(RUNS_DIR) --device $(DEVICE) \
	  $(if $(RESNET_WEIGHTS),--resnet-weights $(RESNET_WEIGHTS)) $(if $(VGGISH_WEIGHTS),--vggish-weights $(VGGISH_WEIGHTS)) \
	  $(if $(METHODS),--methods $(METHODS)) $(if $(SEEDS),--seeds $(SEEDS)) \
	  $(if $(OUT),--out $(OUT)) $(if $(KEEP_STALE),--keep-stale-runs) $(foreach s,$(SET),--set $(s))

report: data
	@$(MAKE) --no-print-directory notebooks

# The whole report on the seconds-long smoke profile, out of place (reports/quick/: executed
# notebooks, their HTML, figures): every step runs, no number means anything (tiny data, 2 epochs).
QUICK_DIR ?= reports/quick
quick: install
	$(PY) -m avs_lib report --profile smoke $(if $(DATA_ROOT),--data-root $(DATA_ROOT)) --runs-dir $(RUNS_DIR) \
	  --device $(DEVICE) --out $(QUICK_DIR)

# The suite, then the smoke copies of the notebooks re-executed and compared by nbval. (The
# report notebooks in notebooks/ carry the cpu profile's results; the README says how long a rerun from scratch takes.)
test: install
	$(PY) -m pytest -q
	$(PY) -m pytest -q --nbval-lax --nbval-sanitize-with notebooks/nbval_sanitize.cfg notebooks/smoke/

# Re-execute the nbval references (notebooks/smoke/) after changing a report notebook; a test
# fails while their code differs from notebooks/*.ipynb. Figures go to runs/, not figures/.
smoke-notebooks: install
	OMP_NUM_THREADS=1 $(PY) -m avs_lib report --profile smoke --runs-dir runs \
	  --device cpu --output-dir notebooks/smoke --figures-dir runs/smoke/figures

# What the browser test needs: Debian's Chromium (apt; sudo when not root) and Playwright from
# PyPI. `playwright install` is never run: it would download a browser of its own.
browser-deps: install
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi
	$(PY) -m pip install --quiet -e '.[dev,browser]' $(if $(LOCK),-c $(LOCK))

# JupyterLab in headless Chromium, driving the mask browser (`make test` runs it too when
# Chromium and Playwright are present, and skips it otherwise).
test-browser: browser-deps
	$(PY) -m pytest -q -m browser tests/test_browser.py

test-fast: install
	$(PY) -m pytest -q -m "not slow and not browser"

lint: install
	$(VENV)/bin/ruff check avs_lib tests benchmarks

bench: install
	$(PY) benchmarks/bench_tpavi.py --out benchmarks/results/tpavi.json

clean:
	rm -rf $(RUNS_DIR) .pytest_cache

# The executed report notebooks as HTML pages, for a reader without Jupyter (nothing is rerun).
HTML_DIR ?= reports/html
html: install
	$(VENV)/bin/jupyter nbconvert --to html --output-dir $(HTML_DIR) notebooks/0*.ipynb

# The defence deck: the executed DECK notebook as reveal.js slides (its cells' Jupyter slide types,
# outputs only), with reveal.js copied beside it from the sphinx-revealjs package, so it opens with no
# network. From a `paper` run: make slides DECK=reports/paper/06_defence.ipynb SLIDES=reports/paper/slides/defence.slides.html
DECK ?= notebooks/06_defence.ipynb
SLIDES ?= reports/slides/defence.slides.html
slides: install
	$(PY) -m avs_lib.report.slides $(DECK) --out $(SLIDES)

# One PNG per slide (figures/slides/slide_NN.png, 1280 x 720), taken in headless Chromium with the
# network cut off. Needs `make browser-deps` once.
SLIDES_SHOTS ?= figures/slides
slides-screenshots: slides
	$(PY) tools/slide_screenshots.py --deck $(SLIDES) --out $(SLIDES_SHOTS)

# The README's mask-browser screenshots (figures/mask_browser_{initial,frame,clip,swapped}.png),
# taken in JupyterLab in headless Chromium over the trained runs of RUNS_DIR/PROFILE (the median
# seeds of tpavi and counterfactual); refuses to run without them. Needs `make browser-deps` once.
SHOTS_DIR ?= figures
browser-screenshots: install
	$(PY) tools/browser_screenshots.py --runs-dir $(RUNS_DIR) --profile $(PROFILE) --out $(SHOTS_DIR) \
	  --device $(DEVICE)
