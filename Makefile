# Everything runs inside .venv, created on first use. Override TORCH to pick another
# build, e.g. `make test TORCH=torch` (newest) or a CUDA wheel on a GPU machine.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.nbseg-installed

.PHONY: venv demo test test-fast test-widgets7 check-data bench bench-quick lab clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned, so no multi-GB CUDA build is pulled in as a dependency.
	$(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e ".[dev,notebook]"
	touch $(STAMP)

demo: venv
	$(BIN)/nbseg demo --project demo_project

# The whole suite on ipywidgets 8, then the panels again on ipywidgets 7.7 (what Colab ships); under
# 10 minutes on 2 cores. Each test's duration is kept in artifacts/junit-*.xml (the <testcase time=...>),
# and the slowest are printed at the end.
REPORT = --durations=25 --durations-min=1 --junitxml=artifacts/junit-$@.xml
test: venv check-data
	$(BIN)/python -m pytest -q -ra -m "not release and not browser" $(REPORT)
	$(MAKE) test-widgets7

# While developing: the unit tests, without training runs, notebooks, browser or fresh venvs (the tests
# marked slow), under 3 minutes on 2 cores. `make test` still runs everything.
test-fast: venv
	$(BIN)/python -m pytest -q -ra -m "not slow and not release and not browser" $(REPORT)

# The release checks (CI runs them after make test): the notebooks in JupyterLab in headless Chromium, the wheel
# installed in a Colab-like fresh venv, binder/'s requirements resolved by pip in another (packaging, as the wheel's
# venv: moved here from make test to keep it under 10 minutes), every README command as written, and what the
# teaching runs learn with quick mode's full training. Several minutes each.
test-release: venv check-data
	$(BIN)/python -m pip install -q "playwright>=1.40"
	$(BIN)/python -m pytest -q -ra -m "release or browser" --durations=15 --junitxml=artifacts/junit-test-release.xml

# The real-data tests read ../shared/data (or NBSEG_SHARED_DATA). In CI (CI=true) its absence fails the
# run; elsewhere those tests skip, and the end of pytest's report lists them.
DATA := $(or $(NBSEG_SHARED_DATA),../shared/data)
check-data:
	@if [ -d "$(DATA)" ]; then echo "real data: $(DATA)"; \
	elif [ "$$CI" = true ]; then \
		echo "make test: no real data at $(DATA); CI runs the tests that read it. Put it there, or set NBSEG_SHARED_DATA." >&2; \
		exit 1; \
	else echo "make test: no real data at $(DATA): the tests that read it skip (listed at the end of the report)."; fi

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

# The panel tests again on ipywidgets 7.7 (what Google Colab ships). .venv-w7 reuses .venv's packages
# through a .pth file (no second torch) and installs ipywidgets 7.7 and its companions over them.
W7 := .venv-w7
W7_STAMP := $(W7)/.nbseg-installed

$(W7_STAMP): $(STAMP)
	$(PYTHON) -m venv $(W7)
	echo "import site; site.addsitedir('$(abspath $(shell $(BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])"))')" \
		> "$$($(W7)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/nbseg-base.pth"
	$(W7)/bin/python -m pip install -q "ipywidgets==7.7.*"
	touch $(W7_STAMP)

test-widgets7: $(W7_STAMP)
	$(W7)/bin/python -c "import ipywidgets, sys; assert ipywidgets.__version__.startswith('7.7'), ipywidgets.__version__; print('ipywidgets', ipywidgets.__version__)"
	$(W7)/bin/python -m pytest -q -ra -p no:cacheprovider $(REPORT) tests/test_ui_panels.py tests/test_ui_helpers.py tests/test_bioimageio_form.py \
		tests/test_ui_correct.py tests/test_ui_partial_labels.py tests/test_ui_denoise.py

# Regenerate notebooks/*.ipynb and docs/glossary.md from nbseg/ui (_notebooks.py, glossary.py).
notebooks-docs: venv
	$(BIN)/python -m nbseg.ui._notebooks
	$(BIN)/python -m nbseg.ui.glossary

# Only the browser layer (JupyterLab in headless Chromium); screenshots land in artifacts/screenshots/.
test-browser: venv
	$(BIN)/python -m pip install -q "playwright>=1.40"
	$(BIN)/python -m pytest -q -ra tests/test_browser.py

# docs/screenshots from this code: the 2D and 3D sequences in JupyterLab (headless Chromium), each primary button
# pressed, then their screenshots copied over the committed ones. Run it after any change to a panel.
screenshots: venv
	$(BIN)/python -m pip install -q "playwright>=1.40"
	rm -f artifacts/screenshots/2d_*.png artifacts/screenshots/3d_*.png
	$(BIN)/python -m pytest -q -ra tests/test_browser.py -k "2d_sequence or 3d_sequence"
	cp artifacts/screenshots/2d_*.png artifacts/screenshots/3d_*.png docs/screenshots/

.PHONY: notebooks-docs test-browser test-release screenshots
