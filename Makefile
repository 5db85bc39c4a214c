# Two commands do all the set-up on a fresh Python 3.11 machine:
#   make demo   -- the main job on the embedded default (synthetic data)
#   make test   -- the whole test suite
# Both first install what is missing into $(VENV) and skip that step when the
# install stamp is newer than the files that define it.

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.mmdet_robust-installed
# torch is installed only if the venv has none: a GPU user creates the venv
# with their own CUDA torch first and keeps it.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install test test-fast demo clean-demo

install: $(STAMP)

$(STAMP): setup.py mmdet_robust/version.py Makefile requirements/runtime.txt requirements/tests.txt requirements/mim.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q 'setuptools>=77,<81' wheel
	$(PY) -c 'import torch' 2>/dev/null || $(PIP) install -q '$(TORCH_SPEC)'
	@# mmcv 2.1.0 ships only an sdist: built once with its compiled ops
	@# (about 10-25 minutes on 2 cores), then reused from pip's wheel cache.
	$(PY) -c 'import mmcv.ops' 2>/dev/null || \
	  MMCV_WITH_OPS=1 $(PIP) install --no-build-isolation mmcv==2.1.0
	$(PIP) install -q -r requirements/runtime.txt -r requirements/tests.txt -r requirements/mim.txt
	$(PIP) install -q --no-deps openmim==0.3.9
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PY) -c 'import mmcv.ops, mmdet, mmdet_robust; print("mmdet_robust ready:", mmdet.__version__)'
	touch $@

test: $(STAMP)
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest tests -m 'not slow' $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m mmdet_robust.tools.demo $(DEMO_ARGS)

clean-demo:  # forget the demo's finished stages (data and venv stay)
	rm -rf work_dirs/demo
