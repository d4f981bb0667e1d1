# Two commands on a fresh machine:  `make demo` (the main job on the embedded default dataset)  and  `make test`.
# Both create .venv and install what they need on first use (`make install`; docs/install.md says what it does).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= demo_out

# Where torch builds come from: $(TORCH_INDEX)/cpu, $(TORCH_INDEX)/cu128, ...
TORCH_INDEX ?= https://download.pytorch.org/whl
# The CUDA builds of that index, newest first; the newest one the NVIDIA driver can run is installed.
TORCH_CUDA_BUILDS ?= cu130 cu129 cu128 cu126 cu124 cu121 cu118
# Installed when $(TORCH_INDEX)/cpu cannot be reached: our CPU machines keep this release's CPU wheel on disk
# (pip's find-links); anywhere else pip fetches this release from PyPI, whose Linux wheel is the CUDA build.
TORCH_FALLBACK ?= 2.13.0
# Short network waits, so that an unreachable index fails in seconds rather than minutes.
PIP_NET := --timeout 10 --retries 1

.PHONY: install test test-slow demo clean

# How install gets torch. The probes below run only when the install recipe runs (make expands a whole recipe
# before running its first line), each at most once (`x = $(eval x := $(shell ...))$(x)`), so `make test` with a
# ready .venv runs none of them, and `make -n install` prints the commands that this machine would run.
#   1. .venv already has torch: keep it.
#   2. An NVIDIA GPU (nvidia-smi runs) and $(PY) has a torch in pyproject.toml's range whose CUDA works (a conda
#      env, an NGC image): .venv is made with --system-site-packages and sees that torch; nothing is downloaded.
#   3. An NVIDIA GPU otherwise: the CUDA build of torch for the driver, from $(TORCH_INDEX)/cuXYZ, where cuXYZ is
#      the newest of TORCH_CUDA_BUILDS not newer than the "CUDA Version" in nvidia-smi's header.
#   4. No GPU: the CPU build from $(TORCH_INDEX)/cpu when that answers within 5 s, else torch==$(TORCH_FALLBACK).
# Then torch is pinned (.venv/torch-constraint.txt) while v3s and its other dependencies are installed, so that
# pip can fail but never replaces the torch chosen above.

# pyproject.toml's torch requirement for $(PY)'s Python version: the newest floor among its "torch>=X,<Y" lines
# whose marker (none, or python_version >= '3.Z') holds.
TORCH_REQ_PY = import re, sys; v = lambda s: tuple(map(int, s.split("."))); \
	reqs = re.findall(r"\"torch>=([0-9.]+),<([0-9]+)(?:; python_version >= .([0-9.]+).)?\",", open("pyproject.toml").read()); \
	lo, hi = max((v(lo), hi) for lo, hi, py in reqs if not py or sys.version_info[:2] >= v(py)); \
	print("torch>=%s,<%s" % (".".join(map(str, lo)), hi))
TORCH_REQ = $(eval TORCH_REQ := $(or $(shell $(PY) -c '$(TORCH_REQ_PY)' 2>/dev/null),$(error \
	pyproject.toml has no "torch>=X,<Y" dependency that holds for $(PY))))$(TORCH_REQ)
venv_torch = $(eval venv_torch := $(shell test -x $(BIN)/python && $(BIN)/python -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null))$(venv_torch)
gpu = $(eval gpu := $(shell nvidia-smi >/dev/null 2>&1 && echo yes))$(gpu)
driver_cuda = $(eval driver_cuda := $(shell nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n 1))$(driver_cuda)
# cuXYZ is CUDA X.Y (its last digit is the minor version); compared as major * 100 + minor.
cuda_build = $(shell echo $(driver_cuda) $(TORCH_CUDA_BUILDS) | awk '{ split($$1, d, "."); for (i = 2; i <= NF; i++) { n = substr($$i, 3); if (int(n / 10) * 100 + n % 10 <= d[1] * 100 + d[2]) { print $$i; exit } } }')
cpu_index_up = $(shell $(PY) -c 'import urllib.request as u; u.urlopen("$(TORCH_INDEX)/cpu/torch/", timeout=5)' >/dev/null 2>&1 && echo yes)
# $(PY)'s torch version when it lies in TORCH_REQ, compared as pip compares versions (2.3.0a0 is older than 2.3,
# 2.6.0a0+ecf3bae is newer), and its CUDA works.
HOST_TORCH_PY = import importlib.metadata as m, re, sys; \
	lo, hi = re.fullmatch(r"torch>=([0-9.]+),<([0-9]+)", sys.argv[1]).groups(); \
	v = m.version("torch"); num, tail = re.match(r"([0-9]+(?:[.][0-9]+)*)(.*)", v).groups(); \
	rel, floor = [(tuple(map(int, s.split("."))) + (0, 0, 0))[:4] for s in (num, lo)]; \
	pre = re.match(r"[-_.]?(a|b|c|rc|alpha|beta|pre|preview|dev)", tail.split("+")[0]); \
	import torch; \
	print(v if (rel > floor or rel == floor and not pre) and rel[0] < int(hi) and torch.cuda.is_available() else "")
host_torch = $(eval host_torch := $(shell $(PY) -c '$(HOST_TORCH_PY)' '$(TORCH_REQ)' 2>/dev/null))$(host_torch)

use_host_torch = $(if $(venv_torch),,$(if $(gpu),$(host_torch)))
torch_step = $(if $(venv_torch),echo "install: $(VENV) has torch $(venv_torch); keeping it",$(if $(gpu),$(gpu_torch_step),$(cpu_torch_step)))
gpu_torch_step = $(if $(host_torch),$(host_torch_step),$(if $(cuda_build),$(cuda_torch_step),$(error install: \
	nvidia-smi reports CUDA version "$(driver_cuda)", on which none of the torch builds $(TORCH_CUDA_BUILDS) runs: \
	update the NVIDIA driver, or install a CUDA torch into $(VENV) yourself (docs/install.md))))
host_torch_step = echo "install: NVIDIA GPU; $(VENV) uses $(PY)'s torch $(host_torch) (CUDA works) through --system-site-packages"
cuda_torch_step = echo "install: the NVIDIA driver runs CUDA <= $(driver_cuda) and $(PY) has no torch in '$(TORCH_REQ)' with \
	working CUDA: torch from $(TORCH_INDEX)/$(cuda_build)" && $(BIN)/pip install $(PIP_NET) --index-url $(TORCH_INDEX)/$(cuda_build) '$(TORCH_REQ)'
cpu_torch_step = $(if $(cpu_index_up),echo "install: no NVIDIA GPU; the CPU build of torch from $(TORCH_INDEX)/cpu" && \
	$(BIN)/pip install $(PIP_NET) --index-url $(TORCH_INDEX)/cpu '$(TORCH_REQ)',echo "install: no NVIDIA GPU and \
	$(TORCH_INDEX)/cpu does not answer; torch==$(TORCH_FALLBACK) from pip's configured sources" && \
	$(BIN)/pip install -q $(PIP_NET) 'torch==$(TORCH_FALLBACK)')

$(BIN)/.v3s-installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(if $(use_host_torch),--system-site-packages )$(VENV)
	$(torch_step)
	$(BIN)/python -c 'import importlib.metadata as m; print("torch==" + m.version("torch"))' > $(VENV)/torch-constraint.txt 2>/dev/null \
		|| { echo "install: $(VENV) sees no torch; remove $(VENV) and run make install again"; exit 1; }
	$(BIN)/pip install -q -c $(VENV)/torch-constraint.txt -e '.[test]'
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
