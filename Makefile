# The two commands a newcomer needs: `make run` (whole service locally) and `make test` (every
# test but the `slow` ones; `make test-all` runs those too).
# Gates: `make lint` (ruff + mypy) and `make audit` (pip-audit) run in CI before the tests.
# AWS: `make deploy STAGE=prod` and `make destroy STAGE=prod` (README "Deploy to AWS").
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAGE ?= prod
ALARM_EMAIL ?=
LOG_RETENTION_DAYS ?= 30
RESERVED_CONCURRENCY ?= auto
ROLLOUT ?= Canary10Percent5Minutes
API_DOMAIN_NAME ?=
API_CERTIFICATE_ARN ?=
UV_COMPILE := $(VENV)/bin/uv pip compile --quiet --python-version 3.11 --annotation-style line \
	--generate-hashes --custom-compile-command "make lock"

.PHONY: run test test-all test-fast lint audit lock venv clean bench package deploy destroy

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) scripts/local_stack.py

# Four workers on two cores: the suite spends about half its time waiting (sockets, the local
# stack's processes, real-time sleeps), so two workers per core keep both busy (measured: 212 s
# with two, 149 s with four). A test file stays on one worker, so the e2e modules that share a
# backend run in order; tests/conftest.py hands out the longest files first.
XDIST := -n 4 --dist loadfile

test: venv
	$(PY) -m pytest $(XDIST) -m "not slow"

test-all: venv
	$(PY) -m pytest $(XDIST)

test-fast: venv
	$(PY) -m pytest $(XDIST) -m "not e2e and not slow"

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Known vulnerabilities in the pinned dependencies (pip-audit, scripts/audit.py). Passes only when
# every package was audited; "not audited" (the vulnerability service unreachable) fails, except
# in CI (CI=true: only the package registries are reachable), where it says so and skips.
audit: venv
	$(PY) scripts/audit.py

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
		--log-retention-days $(LOG_RETENTION_DAYS) --reserved-concurrency $(RESERVED_CONCURRENCY) \
		--rollout $(ROLLOUT) $(if $(API_DOMAIN_NAME),--api-domain-name $(API_DOMAIN_NAME),) \
		$(if $(API_CERTIFICATE_ARN),--api-certificate-arn $(API_CERTIFICATE_ARN),)

destroy: venv
	$(PY) scripts/deploy.py destroy --stage $(STAGE) $(if $(YES),--yes,)
