# The two commands a newcomer needs: `make run` (whole service locally) and `make test`.
# Gates: `make lint` (ruff + mypy) and `make audit` (pip-audit) run in CI before the tests.
# AWS: `make deploy STAGE=prod` and `make destroy STAGE=prod` (README "Deploy to AWS").
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAGE ?= prod
ALARM_EMAIL ?=
LOG_RETENTION_DAYS ?= 30
UV_COMPILE := $(VENV)/bin/uv pip compile --quiet --python-version 3.11 --annotation-style line \
	--custom-compile-command "make lock"

.PHONY: run test test-fast lint audit lock venv clean bench package deploy destroy

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) scripts/local_stack.py

test: venv
	$(PY) -m pytest

test-fast: venv
	$(PY) -m pytest -m "not e2e"

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Known vulnerabilities in the pinned dependencies. Where the vulnerability service cannot be
# reached, pip-audit lists the packages it could not audit and does not fail.
audit: venv
	$(VENV)/bin/pip-audit --progress-spinner off --no-deps --disable-pip -r requirements.txt -r requirements-dev.txt

# Recompile the pins after editing requirements.in / requirements-dev.in (existing pins are kept
# unless `UPGRADE=--upgrade`); requirements.txt is what the Lambda package ships.
lock: venv
	$(UV_COMPILE) --python-platform x86_64-manylinux_2_17 $(UPGRADE) requirements.in -o requirements.txt
	$(UV_COMPILE) --python-platform x86_64-manylinux_2_17 $(UPGRADE) requirements-dev.in -o requirements-dev.txt

clean:
	rm -rf $(VENV) .pytest_cache .local out

bench: venv
	$(PY) -m benchmarks --json .local/benchmarks.json

package: venv
	$(PY) scripts/package.py --stage $(STAGE) out/

deploy: venv
	$(PY) scripts/deploy.py deploy --stage $(STAGE) --alarm-email "$(ALARM_EMAIL)" \
		--log-retention-days $(LOG_RETENTION_DAYS)

destroy: venv
	$(PY) scripts/deploy.py destroy --stage $(STAGE) $(if $(YES),--yes,)
