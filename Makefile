# The project's commands. Every target does its own set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
.PHONY: setup demo pictures test unit integration soak bench clean

setup: $(VENV)/.installed
	@bash scripts/install-system-packages.sh
	@$(PY) -m pipeline infra fetch

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.lock
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

demo: setup
	@bash scripts/demo.sh

pictures: setup
	@bash scripts/pictures.sh

test: setup
	$(PY) -m pytest -q -p no:cacheprovider -m "not soak" tests

unit: $(VENV)/.installed
	$(PY) -m pytest -q -p no:cacheprovider tests/unit

integration: setup
	$(PY) -m pytest -q -p no:cacheprovider -m "not soak" tests/integration

soak: setup
	bash scripts/soak-loop.sh 1

bench: setup
	$(PY) -m benchmarks

clean:
	-$(PY) -m pipeline infra down
	rm -rf var
