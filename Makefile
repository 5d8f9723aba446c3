# Two set-up commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow install corpus sweep gpu-check bench contract

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU build of torch from the machine's local wheel; a bare `torch` would pull several GB of CUDA.
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev,train]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bayesmoe demo

# Lint first (ruff, configured in pyproject.toml; installed here if the venv predates it), then the tests.
test: $(STAMP)
	$(PY) -m ruff --version >/dev/null 2>&1 || $(PY) -m pip install -q "ruff>=0.6,<0.16"
	$(PY) -m ruff check .
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

contract: $(STAMP)
	. $(VENV)/bin/activate && python ../shared/check_contract.py

# The trainer's default corpus (GCIDE dictionary text from Debian); only `make sweep` needs it.
corpus:
	@test -d /usr/share/dictd && ls /usr/share/dictd/gcide* >/dev/null 2>&1 || \
		(apt-get install -y dict-gcide || sudo apt-get install -y dict-gcide)

# The shipped CPU sweep (datasets/trainer_cpu_sweep.csv): one budget at a time, each centred on a fit of the
# runs of the smaller budgets (fit budgets 1e11, 3e11, 1e12; held-out profiles at 2e12, trained before 1e12, and
# at 1e13, trained last); 2 worker processes at 1 thread each. Resumes where it stopped when re-run.
sweep: $(STAMP) corpus
	OMP_NUM_THREADS=1 $(PY) -m trainer sweep --budgets 1e11 3e11 2e12 1e12 1e13 --runs-per-budget 100 100 10 10 10 \
		--recentre --extend-at 1e11 3e11 1e12 --repeat-at 3e11 --repeats 3 --workers 2 --threads 1 \
		--out sweeps/cpu-v2 --group trainer-cpu-v2 --seed 0

# One script under 8 minutes on a GPU: kernels == reference, dispatch benchmark, a short GPU sweep ($$OUT or
# benchmarks/gpu_out). Needs the `gpu` extra (ninja) and nvcc.
gpu-check: $(STAMP)
	PYTHON=$(PY) bash benchmarks/gpu_check.sh

bench: $(STAMP)
	$(PY) benchmarks/fit_speed.py
	$(PY) benchmarks/propagation.py
	$(PY) benchmarks/dispatch.py
