# One entry point for people and CI. `make test` is what .ci/run calls.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)
# Tests import the app from app/src (pytest.ini); no bytecode or egg-info lands in the tree the role deploys.
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv lint pytest images molecule molecule-default molecule-fleet molecule-ops test demo demo-clean deploy bench clean

help:
	@echo "make demo      provision a local Debian container with site.yml and drive a simulated Bitrix24 dialog through it"
	@echo "make test      every test: lint, pytest, Molecule (default + fleet scenarios)"
	@echo "make deploy    ansible-playbook site.yml -i inventory"
	@echo "make bench     benchmarks, results to bench/results/ and the README table"

$(VENV)/.stamp: requirements-dev.txt app/requirements.txt app/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -r app/requirements.txt
	touch $@

venv: $(VENV)/.stamp

lint: venv
	ruff check app tests scripts bench
	ruff format --check app tests scripts bench
	yamllint -s .
	ansible-lint
	python scripts/docs.py --check

pytest: venv
	pytest -q tests

# Systemd test images b24bot-test:{bookworm,trixie}; seconds when warm (cached in /var/cache/b24bot-images).
images:
	scripts/test-images.sh

# Each scenario prints its wall time last, so CI logs show where the budget goes.
molecule-default: venv images
	@t=$$SECONDS; molecule test -s default && echo "== molecule default passed in $$((SECONDS - t)) s"

molecule-fleet: venv images
	@t=$$SECONDS; molecule test -s fleet && echo "== molecule fleet passed in $$((SECONDS - t)) s"

molecule-ops: venv images
	@t=$$SECONDS; molecule test -s ops && echo "== molecule ops passed in $$((SECONDS - t)) s"

molecule: molecule-default molecule-fleet molecule-ops

test: lint pytest molecule

demo: venv images
	scripts/demo.sh

demo-clean:
	-docker rm -f $${B24BOT_DEMO_NAME:-b24bot-demo}

deploy: venv
	ansible-playbook site.yml -i $${INVENTORY:-inventory}

bench: venv
	$(PY) bench/run.py

clean:
	-molecule destroy -s default
	-molecule destroy -s fleet
	-molecule destroy -s ops
	-docker rm -f $${B24BOT_DEMO_NAME:-b24bot-demo}
	rm -rf .pytest_cache .ruff_cache
