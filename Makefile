# Every target creates .venv and installs the project on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PYTHONHASHSEED ?= 0

.PHONY: all install demo report test test-platform sweep bench conformance corpus clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[harness,runtimes]'  # runtimes: check-model's jax, tf2onnx, onnxruntime, LiteRT (tests/test_check_model.py needs them)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m rnn_ref demo

# The report's sweeps run as tasks on a local Dask cluster, one worker a core
# (docs/scale.md). `make report FULL=1`: the full sweep (about 11 minutes of
# work); EXAMPLES=N cases a property; WORKERS=N local workers (0: one process,
# no Dask); SCHEDULER=tcp://HOST:PORT an existing cluster.
report: $(STAMP)
	$(PY) -m rnn_ref report --out report $(if $(FULL),--full) $(if $(EXAMPLES),--max-examples $(EXAMPLES)) \
		$(if $(WORKERS),--workers $(WORKERS)) $(if $(SCHEDULER),--scheduler $(SCHEDULER))

# Two pytest-xdist workers, one per core here (`make test JOBS=0`: no workers, one process).
# Hypothesis's ci profile is derandomized, so each worker draws the same examples
# a single process would.
JOBS ?= 2

test: $(STAMP)
	$(PY) -m pytest --hypothesis-profile=ci -q -n $(JOBS) --dist worksteal

# The tests whose Keras results depend on TensorFlow's kernels, under both oneDNN settings
# (which one a machine uses by default depends on its CPU).
test-platform: $(STAMP)
	TF_ENABLE_ONEDNN_OPTS=0 $(PY) -m pytest --hypothesis-profile=ci -q -n $(JOBS) -m platform
	TF_ENABLE_ONEDNN_OPTS=1 $(PY) -m pytest --hypothesis-profile=ci -q -n $(JOBS) -m platform

sweep: $(STAMP)
	$(PY) -m pytest --hypothesis-profile=thorough -q -n 2

bench: $(STAMP)
	$(PY) -m rnn_ref bench --out bench.json

# Every catalogue model on every runtime (keras, jax, numpy, torch, onnx, litert), one
# worker process a core: conformance/conformance.md, a table model x runtime (docs/runtimes.md).
conformance: $(STAMP)
	$(PY) -m rnn_ref conformance --out conformance

# Rebuild the conformance corpus shipped in rnn_ref/corpus_data (on purpose only: docs/corpus.md).
corpus: $(STAMP)
	$(PY) -m rnn_ref corpus build
	$(PY) -m rnn_ref corpus verify

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
