# Two commands on a fresh machine:  `make demo` (the main job on the embedded default dataset)  and  `make test`.
# Both create .venv and install what they need on first use.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= demo_out

.PHONY: install test test-slow demo bench clean

$(BIN)/.v3s-installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# No GPU: install the CPU build of torch first (pinned; it lies on disk on our CPU machines),
	# so that the range in pyproject.toml is already satisfied and pip pulls no multi-GB CUDA build.
	if ! command -v nvidia-smi >/dev/null 2>&1 && ! $(BIN)/python -c "import torch" 2>/dev/null; then \
		$(BIN)/pip install -q torch==2.13.0 ; fi
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/.v3s-installed

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

demo: install
	$(BIN)/v3s-eval demo --out $(OUT)

clean:
	rm -rf $(VENV) $(OUT)
