# Quick start:  make demo   (set up .venv if needed, run the embedded demo)
#               make test   (set up .venv if needed, run the test suite)
PYTHON ?= python3
VENV ?= .venv
# A pinned torch: on a CPU-only machine with a local CPU wheel this takes that wheel instead of a
# multi-GB CUDA build. Override for other machines, e.g. make test TORCH_SPEC="torch==2.5.1".
TORCH_SPEC ?= torch==2.13.0
MMCV_WHEEL := $(wildcard ../shared/wheels/mmcv-*.whl)
STAMP := $(VENV)/.hdm-installed

.PHONY: setup demo test lint mmcv browser slurm clean-demo

$(STAMP): setup.py
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q "$(TORCH_SPEC)"
	$(VENV)/bin/pip install -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/python scripts/demo.py

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Optional: mmcv's deformable conv (a prebuilt CPU wheel) so its backend is tested too. --no-deps keeps
# mmengine from pulling the non-headless opencv-python beside opencv-python-headless.
mmcv: $(STAMP)
	$(if $(MMCV_WHEEL),$(VENV)/bin/pip install -q --no-deps $(MMCV_WHEEL) mmengine addict yapf termcolor \
		rich pygments markdown-it-py mdurl packaging platformdirs,@echo "no mmcv wheel in ../shared/wheels: skipped")

# Optional: Debian's Chromium and its driver for the browser test of hdm-serve (tests/test_serve.py skips
# without them). Needs root or sudo.
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

# Optional: Debian's slurm-wlm and munge, and a one-node cluster on this machine (.ci/slurm_cluster.sh), so
# the tests that submit real Slurm jobs run (tests/test_slurm.py skips without one). Needs root or sudo;
# never fails: without a cluster those tests skip and say why.
slurm:
	command -v sbatch >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq slurm-wlm munge >/dev/null; } \
		|| echo "slurm: could not install slurm-wlm and munge; the Slurm tests will skip"
	SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); $$SUDO .ci/slurm_cluster.sh || true

clean-demo:
	rm -rf runs/hdm_demo datasets/demo
