# One entry point for people and CI. `make test` is what .ci/run calls.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)
# Tests import the app from app/src (pytest.ini); no bytecode or egg-info lands in the tree the role deploys.
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help tools tools-docker venv lint pytest images molecule molecule-default molecule-fleet molecule-ops test demo demo-clean deploy bench clean

# Every target with a `## ` comment is listed by `make help`.
help: ## this list
	@awk -F':.*## ' '/^[a-z-]+:.*## / {printf "  make %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

tools: ## install the host tools lint and pytest need (python3-venv, make, chromium) when missing
	@scripts/bootstrap.sh --no-docker

tools-docker: ## the same plus docker.io, debootstrap, zstd and one running dockerd (Molecule, demo)
	@scripts/bootstrap.sh

$(VENV)/.stamp: requirements-dev.txt app/requirements.txt app/pyproject.toml | tools
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -r app/requirements.txt
	touch $@

venv: $(VENV)/.stamp ## .venv/ with the pinned tooling

# The last two lines: the example inventory users copy first stays loadable (vars files included) by every playbook.
lint: venv ## ruff, yamllint, ansible-lint, the generated docs, playbook syntax
	ruff check app tests scripts bench roles
	ruff format --check app tests scripts bench roles
	yamllint -s .
	ansible-lint
	python scripts/docs.py --check
	ansible-inventory -i inventory.example --list >/dev/null
	ansible-playbook --syntax-check -i inventory.example site.yml playbooks/*.yml >/dev/null

pytest: venv ## the app against real gunicorn and the simulated portal
	pytest -q tests

# Systemd test images b24bot-test:{bookworm,trixie}; seconds when warm (cached in /var/cache/b24bot-images).
images: tools-docker ## the systemd test images (cached in /var/cache/b24bot-images)
	scripts/test-images.sh

# Each scenario prints its wall time last, so CI logs show where the budget goes.
molecule-default: venv images ## Molecule: Debian 12 + 13, check mode, idempotence, e2e dialog
	@t=$$SECONDS; molecule test -s default && echo "== molecule default passed in $$((SECONDS - t)) s"

molecule-fleet: venv images ## Molecule: three hosts, a rolling redeploy
	@t=$$SECONDS; molecule test -s fleet && echo "== molecule fleet passed in $$((SECONDS - t)) s"

molecule-ops: venv images ## Molecule: backup, restore, upgrade, uninstall, purge
	@t=$$SECONDS; molecule test -s ops && echo "== molecule ops passed in $$((SECONDS - t)) s"

molecule: molecule-default molecule-fleet molecule-ops ## all three scenarios

test: lint pytest molecule ## everything CI runs (.ci/run calls this)

demo: venv images ## a local container provisioned by site.yml plays one simulated dialog
	scripts/demo.sh

demo-clean: ## remove the demo container
	-docker rm -f $${B24BOT_DEMO_NAME:-b24bot-demo}

deploy: venv ## ansible-playbook site.yml -i inventory
	ansible-playbook site.yml -i $${INVENTORY:-inventory}

bench: venv ## benchmarks, results to bench/results/ and the README table
	$(PY) bench/run.py

clean: ## destroy Molecule scenarios and the demo container, drop caches
	-molecule destroy -s default
	-molecule destroy -s fleet
	-molecule destroy -s ops
	-docker rm -f $${B24BOT_DEMO_NAME:-b24bot-demo}
	rm -rf .pytest_cache .ruff_cache
