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
# Offline classroom: `make wheelhouse` (with network) collects every pinned wheel into WHEELHOUSE
# for PLATFORMS (linux macos windows) and PYTHONS; Linux takes the CPU torch from TORCH_INDEX or
# from the folders in FIND_LINKS. Copied to a machine with no network, SWEAT_WHEELHOUSE=<folder>
# (or a complete wheelhouse/ here) makes the install `pip install --no-index --find-links <folder>`.
WHEELHOUSE ?= wheelhouse
PLATFORMS ?= linux macos windows
PYTHONS ?= 3.11
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
FIND_LINKS ?=
SWEAT_WHEELHOUSE ?= $(if $(wildcard $(WHEELHOUSE)/manifest.json),$(WHEELHOUSE))
OFFLINE_PIP_ARGS = $(if $(SWEAT_WHEELHOUSE),--no-index --find-links '$(SWEAT_WHEELHOUSE)')
# Extra arguments for JupyterLab, e.g. LAB_ARGS="--port 8899".
LAB_ARGS ?=
# What `make grade` grades, e.g. GRADE_ARGS="submissions/ --lab 01_matmul --hidden hidden/ -j 2".
GRADE_ARGS ?=
SWEAT := $(BIN)/sweatlab

.PHONY: wheelhouse setup lab test check labs solutions slides nbval doctor grade selftest profile clean-venv help

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
	@echo "make wheelhouse  collect every pinned wheel for an offline classroom (see README)"

# The install runs only when pyproject.toml (or this Makefile) changed since the last one.
$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if (3, 10) <= v[:2] < (3, 14) else "Python 3.10-3.13 is needed (3.11 is tested); found %d.%d. Install Python 3.11 and run: make PYTHON=python3.11 lab" % v[:2])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if [ -n "$(SWEAT_WHEELHOUSE)" ]; then \
	  test -d "$(SWEAT_WHEELHOUSE)" || { echo "SWEAT_WHEELHOUSE=$(SWEAT_WHEELHOUSE) is not a folder. Copy the wheelhouse there (make wheelhouse builds one on a machine with network), or unset SWEAT_WHEELHOUSE to install from the network."; exit 1; }; \
	  echo "Installing with no network from the wheelhouse $(SWEAT_WHEELHOUSE)"; fi
	@echo "$(BIN)/python -m pip install --disable-pip-version-check -q $(OFFLINE_PIP_ARGS) $(PIP_ARGS) -e '.[test]'"
	@$(BIN)/python -m pip install --disable-pip-version-check -q $(OFFLINE_PIP_ARGS) $(PIP_ARGS) -e '.[test]' \
	  || { test -z "$(SWEAT_WHEELHOUSE)" || echo "The install from the wheelhouse $(SWEAT_WHEELHOUSE) failed (see above). 'No matching distribution' means it lacks a wheel for this machine: build it (with network) for this platform and Python $$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'), e.g. make wheelhouse PLATFORMS=linux PYTHONS=3.11, or unset SWEAT_WHEELHOUSE (and move wheelhouse/ away) to install from the network."; exit 1; }
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
	@# the tests that time nothing on two workers, then the timed ones alone (tests/conftest.py: TIMED_MODULES)
	$(BIN)/python -m pytest -n 2 -m "not timed" tests
	$(BIN)/python -m pytest -m timed tests
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

# thin: the logic is lib/sweatlab/tools/wheelhouse.py (standard library only, runs before any install)
wheelhouse:
	PYTHONPATH=lib $(PYTHON) -m sweatlab.tools.wheelhouse --dest "$(WHEELHOUSE)" --platforms "$(PLATFORMS)" --python "$(PYTHONS)" --torch-index "$(TORCH_INDEX)" $(foreach d,$(FIND_LINKS),--find-links "$(d)")

clean-venv:
	rm -rf $(VENV)
