# The two commands a newcomer needs: `make run` (whole service locally) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test test-fast venv clean bench package

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

clean:
	rm -rf $(VENV) .pytest_cache .local

bench: venv
	$(PY) -m benchmarks --json .local/benchmarks.json

package: venv
	rm -rf out
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(VENV)/bin/chalice package --stage prod --merge-template infra/prod-resources.json out/
	$(VENV)/bin/cfn-lint out/sam.json
