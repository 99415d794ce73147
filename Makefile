# Two commands on a fresh machine: `make demo` and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lab bench

install: $(STAMP)

# Everything: the core (detection), [train] (the steps), [workflow] (the notebooks), [references] (the reference
# detectors of `eval --references`) and [dev] (tests, Ray).
# torch is pinned to 2.13.0; every other version comes from requirements.lock. Which build of 2.13.0 pip
# takes is the package index's choice: here pip's configuration offers the CPU wheel; elsewhere PyPI's
# Linux wheel is the CUDA build. TORCH_INDEX_URL picks another, e.g. on a CPU-only machine:
#   make install TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL ?=
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock torch==2.13.0 $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(PY) -m pip install -q -c requirements.lock -e '.[train,workflow,references,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/wldetect demo

test: $(STAMP)
	$(PY) -m pytest -q

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

bench: $(STAMP)
	$(PY) benchmarks/bench_counting.py
	$(PY) benchmarks/bench_counting_ray.py
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_detect.py
	$(PY) benchmarks/bench_ceilings.py
	$(PY) benchmarks/bench_gguf.py
	$(PY) benchmarks/bench_scale.py
