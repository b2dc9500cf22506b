# recnas: two commands do everything.
#   make demo   create .venv, run jobs/demo.yaml on the shipped data
#   make test   create .venv, run the tests
# Both share one .venv: recnas with its test tools.
PYTHON ?= python3
# torch's CPU build; PyPI's default Linux wheel of the same version is the
# multi-GB CUDA build. Set TORCH_INDEX= to take torch from pip's usual sources.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint ui clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --retries 0 \
		$(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	RAY_USAGE_STATS_ENABLED=0 MLFLOW_DISABLE_TELEMETRY=true \
		$(BIN)/recnas run jobs/demo.yaml

test: $(STAMP)
	$(BIN)/ruff check platform tests
	RAY_USAGE_STATS_ENABLED=0 MLFLOW_DISABLE_TELEMETRY=true \
		$(BIN)/pytest -q -m "not benchmark" tests

bench: $(STAMP)
	RAY_USAGE_STATS_ENABLED=0 MLFLOW_DISABLE_TELEMETRY=true \
		$(BIN)/pytest -q -s -m benchmark tests/benchmarks

lint: $(STAMP)
	$(BIN)/ruff check platform tests
	$(BIN)/ruff format --check platform tests

ui: $(STAMP)
	$(BIN)/recnas ui

clean:
	rm -rf $(VENV) runs
