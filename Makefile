# Everything runs inside .venv, created on first use. Override TORCH to pick another
# build, e.g. `make test TORCH=torch` (newest) or a CUDA wheel on a GPU machine.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.nbseg-installed

.PHONY: venv demo test test-widgets7 bench bench-quick lab clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned, so no multi-GB CUDA build is pulled in as a dependency.
	$(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e ".[dev,notebook]"
	touch $(STAMP)

demo: venv
	$(BIN)/nbseg demo --project demo_project

test: venv
	$(BIN)/python -m pytest -q -ra

lab: venv
	$(BIN)/jupyter lab notebooks

bench: venv
	$(BIN)/python -m pip install -e ".[bench]"
	$(BIN)/python bench/run_all.py

bench-quick: venv
	$(BIN)/python -m pip install -e ".[bench]"
	$(BIN)/python bench/run_all.py --quick

clean:
	rm -rf $(VENV) demo_project .pytest_cache
