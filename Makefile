# Quick start:  make demo  (the main job on the default model)  |  make test  (the test suite)
# Both create the virtual environment .venv on first use. torch==2.13.0 (a CPU
# wheel) is installed first so that the package's open torch range is already
# satisfied and pip fetches no multi-GB CUDA build.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test fetch venv clean-venv

$(BIN)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: llmfmri needs Python >= 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

venv: $(BIN)/.installed

fetch: $(BIN)/.installed
	$(BIN)/llmfmri fetch

demo: fetch
	$(BIN)/llmfmri run --out runs/demo --overwrite

test: fetch
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

clean-venv:
	rm -rf $(VENV)
