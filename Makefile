# Two set-up commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow install corpus sweep bench contract

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

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

contract: $(STAMP)
	. $(VENV)/bin/activate && python ../shared/check_contract.py

# The trainer's default corpus (GCIDE dictionary text from Debian); only `make sweep` needs it.
corpus:
	@test -d /usr/share/dictd && ls /usr/share/dictd/gcide* >/dev/null 2>&1 || \
		(apt-get install -y dict-gcide || sudo apt-get install -y dict-gcide)

# The shipped CPU sweep (datasets/trainer_cpu_sweep.csv); resumes where it stopped when re-run.
sweep: $(STAMP) corpus
	$(PY) -m trainer sweep --budgets 1e10 3e10 1e11 3e11 1e12 3e12 1e13 --runs-per-budget 14 21 14 14 7 7 4 \
		--out sweeps/cpu-v1 --device cpu --seed 0 --threads 1 --group trainer-cpu-v1

bench: $(STAMP)
	$(PY) benchmarks/fit_speed.py
	$(PY) benchmarks/propagation.py
	$(PY) benchmarks/dispatch.py
