# Fresh-machine entry points. Each target creates its own virtual environment in $(VENV).
#   make demo   set up, then run the main job (the link-prediction unlearning demo)
#   make test   set up, then run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first, pinned: on these machines a bare `torch` requirement pulls a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
# Real datasets: $GRAPHUNLEARN_DATA, else ../shared/data when it exists (tests needing it skip otherwise).
GRAPHUNLEARN_DATA ?= $(wildcard ../shared/data)
export GRAPHUNLEARN_DATA

.PHONY: setup demo test lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) examples/link_unlearning_demo.py --out out/demo

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
