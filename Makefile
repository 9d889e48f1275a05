# Two commands from a fresh clone: `make demo` and `make test`.
# Each creates the project-local virtualenv once, from the pinned requirements.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# ROS traffic stays on loopback; ament_index finds the venv like a sourced workspace.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export AMENT_PREFIX_PATH := $(CURDIR)/$(VENV)
export PYTHONUNBUFFERED := 1

.PHONY: demo test lint bench venv clean

venv: $(STAMP)

$(STAMP): requirements/runtime.txt requirements/dev.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py --output-dir out/demo

# pytest exit code 5 (no tests collected) is a failure, not a pass.
test: $(STAMP)
	$(PY) -m pytest -ra --durations=15 test; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo 'pytest collected no tests: failing'; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(PY) -m flake8 mono_depth_ros training test scripts launch setup.py

bench: $(STAMP)
	$(PY) scripts/bench_geometry.py

clean:
	rm -rf $(VENV) build *.egg-info out runs
