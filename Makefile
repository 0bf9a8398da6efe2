# Two commands on a fresh Linux machine: `make study` and `make test`. Each sets up what it
# needs first: a virtual environment with requirements.txt, and Graphviz's `dot` for diagrams
# (and, for the tests, headless Chromium to open the results pages).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The quick study trains on CIFAR-10 from tensorflow-datasets (downloaded on first use); on a
# machine without internet the real CIFAR-10 subset beside the checkout is used instead.
SHARED_SUBSET := ../shared/data/cifar10-subset.npz
DATASET ?= $(if $(wildcard $(SHARED_SUBSET)),npz:$(SHARED_SUBSET),cifar10)
PYTEST_ARGS ?=
# Test processes: most of a training test's time is Python tracing a graph on one core.
TEST_WORKERS ?= 2
PYTEST = $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal

.PHONY: setup graphviz chromium slurm study lint test test-fast test-long clean

setup: $(VENV)/.installed graphviz

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

graphviz:
	@if command -v dot >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Graphviz (dot) for architecture diagrams"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; \
	else \
		echo "Graphviz 'dot' not found: diagrams fall back to DOT text. Install it with 'sudo apt-get install graphviz'."; \
	fi

# The browser tests open the results pages in headless Chromium; elsewhere they skip, saying why.
chromium:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Chromium and its driver for the browser tests"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium chromium-driver >/dev/null; } || echo "Could not install them: the browser tests will skip."; \
	else \
		echo "Chromium or chromedriver not found: the browser tests will skip. Install them with" \
			"'sudo apt-get install chromium chromium-driver'."; \
	fi

# The scale-out test runs the README's job-array script under a real single-node SLURM cluster on
# localhost (tests/slurm.py starts it); elsewhere that test skips, saying why.
slurm:
	@if command -v sbatch >/dev/null 2>&1 && command -v slurmctld >/dev/null 2>&1 && command -v munged >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing SLURM (slurm-wlm) and munge for the scale-out test"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			slurm-wlm munge >/dev/null; } || echo "Could not install them: the SLURM test will skip."; \
	else \
		echo "SLURM or munge not found: the SLURM test will skip. Install them with" \
			"'sudo apt-get install slurm-wlm munge'."; \
	fi

study: setup
	$(PY) -m studies.depth_vs_width --protocol smoke --dataset $(DATASET)

# The layering (pyproject.toml's import-linter contract) and ruff's checks.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# The lint, then the test suite without the tests marked `long` (every study end to end and the
# biggest nets), which `make test-long` runs; CI runs both.
test: lint $(VENV)/.reference chromium
	$(PYTEST) -m "not long" $(PYTEST_ARGS)

# The quick loop while editing: nothing that trains, starts a process or builds a net over 20M params.
test-fast: lint
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-long: setup $(VENV)/.reference slurm
	$(PYTEST) -m long $(PYTEST_ARGS)

# PyTorch is the reference two tests compare against. It is not a requirement: it is installed
# only where pip finds a wheel of it on disk (its find-links), never downloaded (that would be
# gigabytes of CUDA); its small dependencies then come from the index. Elsewhere the two skip.
$(VENV)/.reference: $(VENV)/.installed
	@if $(PY) -m pip install --quiet --no-index --no-deps torch >/dev/null 2>&1 \
		&& $(PY) -m pip install --quiet torch >/dev/null 2>&1; then \
		echo "PyTorch installed from a local wheel: the checks against it will run"; \
	else echo "No local PyTorch wheel: the two checks against PyTorch will skip"; fi
	@touch $@

clean:
	rm -rf $(VENV) .pytest_cache
