# Two commands from a fresh clone: `make demo` and `make test`.
# Each creates the project-local virtualenv once, from the pinned requirements, with only what
# it needs: `make demo` the runtime set (rclpy, numpy, OpenCV, ONNX Runtime, mcap; no torch),
# `make test` the development set on top (torch CPU, linters, training) and, where the
# ../shared/ros2 toolchain folder exists, the real ROS 2 command line, launch and colcon.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed
ROS2_SHARED := ../shared/ros2
ROS2_STAMP := $(VENV)/.installed-ros2

# ROS traffic stays on loopback; ament_index finds the venv like a sourced workspace.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export AMENT_PREFIX_PATH := $(CURDIR)/$(VENV)
export PYTHONUNBUFFERED := 1

.PHONY: demo test lint bench venv ros2-tools clean

venv: $(STAMP)

$(RUNTIME_STAMP): requirements/runtime.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -r requirements/runtime.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP) requirements/dev.txt
	$(PY) -m pip install --quiet -r requirements/dev.txt
	touch $(STAMP)

# The real ROS 2 CLI, launch, launch_testing and colcon (../shared/ros2/install.sh, about
# 2-4 minutes once). Without that folder the tests that need them skip with the reason;
# with MONO_DEPTH_REQUIRE_DATA set (CI) its absence is an error.
ros2-tools: $(ROS2_STAMP)

$(ROS2_STAMP): $(STAMP) $(wildcard $(ROS2_SHARED)/install.sh $(ROS2_SHARED)/requirements.txt)
	@if [ -f $(ROS2_SHARED)/install.sh ]; then \
	  bash $(ROS2_SHARED)/install.sh $(VENV) && touch $(ROS2_STAMP); \
	elif [ -n "$$MONO_DEPTH_REQUIRE_DATA" ] && [ "$$MONO_DEPTH_REQUIRE_DATA" != 0 ]; then \
	  echo "$(ROS2_SHARED)/install.sh not found and MONO_DEPTH_REQUIRE_DATA is set: the" \
	       "colcon, ros2 launch and launch_testing tests cannot run" >&2; exit 1; \
	else \
	  echo "no $(ROS2_SHARED): the colcon, ros2 launch and launch_testing tests will skip"; \
	fi

demo: $(RUNTIME_STAMP)
	$(PY) scripts/demo.py --output-dir out/demo

# pytest exit code 5 (no tests collected) is a failure, not a pass.
test: $(STAMP) $(ROS2_STAMP)
	$(PY) -m pytest -ra --durations=15 test; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo 'pytest collected no tests: failing'; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(PY) -m flake8 mono_depth_ros training test scripts launch setup.py

bench: $(STAMP)
	$(PY) scripts/bench/bench_geometry.py

clean:
	rm -rf $(VENV) build *.egg-info out runs
