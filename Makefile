# Two commands on a fresh Debian 12 machine, as root:
#   make demo   install everything, bring up the local lab, run the runbook on it
#   make test   install everything, run the whole test suite (unit + lab)
SHELL := /bin/bash
PY := .venv/bin/python
PARAMS ?= params/lab.yaml
# qemu-system-x86, qemu-utils, e2fsprogs: the VM lab node (params/lab-bonding.yaml, tests marked `vm`).
APT_PACKAGES := systemd-container debootstrap openssh-client iproute2 nftables curl python3-venv qemu-system-x86 qemu-utils e2fsprogs
PYTEST_ARGS ?=

.PHONY: setup apt venv demo test test-unit lab-up lab-status lab-down bench clean training

setup: apt venv

apt:
	@if ! dpkg-query -W -f='$${Status}\n' $(APT_PACKAGES) 2>/dev/null | grep -qv 'install ok installed' \
	    && [ "$$(dpkg-query -W -f='$${Status}\n' $(APT_PACKAGES) 2>/dev/null | wc -l)" -eq "$(words $(APT_PACKAGES))" ]; then \
	  echo "apt: $(APT_PACKAGES) already installed"; \
	else \
	  echo "apt: installing $(APT_PACKAGES)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PACKAGES); \
	fi

venv: .venv/.stamp

.venv/.stamp: requirements.txt lib/pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q -r requirements.txt
	touch $@

# --failover joins once notebooks/07_failover_tests.ipynb exists; the run prints the path of its index.html.
FAILOVER_FLAG = $(if $(wildcard notebooks/07_failover_tests.ipynb),--failover,)

demo: setup
	$(PY) -m hakit lab up --params $(PARAMS)
	$(PY) -m hakit run --params $(PARAMS) --stages all $(FAILOVER_FLAG)
	$(PY) -m hakit check --params $(PARAMS)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest -m "not lab" $(PYTEST_ARGS)

lab-up: setup
	$(PY) -m hakit lab up --params $(PARAMS)

lab-status:
	$(PY) -m hakit lab status --params $(PARAMS)

lab-down:
	$(PY) -m hakit lab down --params $(PARAMS)

training: setup
	$(PY) -m hakit prepare --params $(PARAMS) --out training

bench: setup
	$(PY) -m hakit bench lab --cold

clean: lab-down
	rm -rf .venv runs
