# Systems That Sweat: the verbs. Two are all a learner needs: `make lab` and `make test`.
# Every target installs the pinned stack into .venv on first use; later runs skip it.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sweat-installed
KERNEL := systems-that-sweat
# Extra pip arguments, e.g. PIP_ARGS="--index-url <a mirror>" for an offline classroom mirror.
PIP_ARGS ?=
# Extra arguments for JupyterLab, e.g. LAB_ARGS="--port 8899".
LAB_ARGS ?=
# What `make grade` grades, e.g. GRADE_ARGS="submissions/ --lab 01_matmul --hidden hidden/ -j 2".
GRADE_ARGS ?=
SWEAT := $(BIN)/sweatlab

.PHONY: setup lab test check labs solutions slides nbval doctor grade selftest profile clean-venv help

help:
	@echo "make lab      start JupyterLab on the course (installs on first run)"
	@echo "make test     run every test: library, notebook checks, nbval, slides"
	@echo "make doctor   pre-flight check of this machine and install"
	@echo "make labs     regenerate labs/ from solutions/*.py"
	@echo "make solutions  re-execute solutions/*.ipynb from solutions/*.py"
	@echo "make check    labs/ and solutions/ are in sync (under a minute)"
	@echo "make slides   build slides/*.md into offline HTML decks in slides/build/"
	@echo "make grade GRADE_ARGS='submissions/ -j 2'   grade submitted notebooks (see README)"
	@echo "make profile  measure this machine: peaks, bandwidth, timer, sensors"

# The install runs only when pyproject.toml (or this Makefile) changed since the last one.
$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if (3, 10) <= v[:2] < (3, 14) else "Python 3.10-3.13 is needed (3.11 is tested); found %d.%d. Install Python 3.11 and run: make PYTHON=python3.11 lab" % v[:2])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q $(PIP_ARGS) -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python 3 (Systems That Sweat)" >/dev/null
	@# an offline course: JupyterLab neither fetches news nor checks for updates
	@mkdir -p $(VENV)/share/jupyter/lab/settings
	@echo '{"@jupyterlab/apputils-extension:notification": {"checkForUpdates": false, "fetchNews": "false"}}' > $(VENV)/share/jupyter/lab/settings/overrides.json
	@touch $(STAMP)
	@echo "Installed into $(VENV). Next time this step is skipped."

setup: $(STAMP)

lab: $(STAMP)
	$(SWEAT) lab $(LAB_ARGS)

test: $(STAMP)
	$(SWEAT) check
	$(BIN)/python -m pytest tests
	$(SWEAT) nbval
	$(SWEAT) grade --selftest -j 2

check: $(STAMP)
	$(SWEAT) check

labs: $(STAMP)
	$(SWEAT) build-labs

solutions: $(STAMP)
	$(SWEAT) execute

slides: $(STAMP)
	$(SWEAT) slides

nbval: $(STAMP)
	$(SWEAT) nbval

doctor: $(STAMP)
	$(SWEAT) doctor

grade: $(STAMP)
	$(SWEAT) grade $(GRADE_ARGS)

selftest: $(STAMP)
	$(SWEAT) grade --selftest -j 2

profile: $(STAMP)
	$(SWEAT) profile

clean-venv:
	rm -rf $(VENV)
