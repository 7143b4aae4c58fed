# Two commands on a fresh Debian 12 machine, as root:
#   make demo   install what the lab needs, bring up the local lab, run the runbook on it
#   make test   install everything the tests need, run the whole test suite (unit + lab)
SHELL := /bin/bash
PY := .venv/bin/python
PARAMS ?= params/lab.yaml
# What this machine needs for the container lab (and the venv).
APT_LAB := systemd-container debootstrap openssh-client iproute2 nftables curl python3-venv
# What a VM lab node needs on top: only for params with VM nodes (`lab.kinds: <node>: vm`, e.g.
# params/lab-bonding.yaml) and for `make test` (tests marked `vm`); VM=1 asks for it whatever PARAMS says.
APT_VM := qemu-system-x86 qemu-utils e2fsprogs
VM ?=
PYTEST_ARGS ?=

.PHONY: setup apt apt-vm venv demo test test-allvm test-bench test-unit lab-up lab-status lab-down bench clean training

setup: apt venv apt-vm

# $(call apt_install,packages,what for): apt-get only when one of them is missing, never the Recommends.
apt_install = if [ "$$(dpkg-query -W -f='$${Status}\n' $(1) 2>/dev/null | grep -c '^install ok installed$$')" -eq "$(words $(1))" ]; then \
	  echo "apt: $(2): $(1) already installed"; \
	else \
	  echo "apt: $(2): installing $(1) (--no-install-recommends)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(1); \
	fi

apt:
	@$(call apt_install,$(APT_LAB),the container lab)

apt-vm: venv
	@if [ -n "$(VM)" ]; then why="VM=$(VM)"; \
	else kinds=$$($(PY) -m hakit lab kinds --params $(PARAMS)) || exit 1; \
	  vms=$$(awk '$$2 == "vm" {print $$1}' <<<"$$kinds" | paste -sd, -); why=$${vms:+$(PARAMS) has VM nodes ($$vms)}; fi; \
	if [ -n "$$why" ]; then $(call apt_install,$(APT_VM),$$why); \
	else echo "apt: $(PARAMS) has no VM node: qemu is not needed (VM=1 installs it anyway)"; fi

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

# The whole suite includes the tests marked `vm`: the VM tooling comes too. Its modules run on
# TEST_WORKERS pytest-xdist workers (whole modules each: a module's fixtures stay in one process), each
# worker with labs of its own (tests/lab/conftest.py: the next HAKIT_TEST_SLOT); TEST_WORKERS=0 runs serially.
# The all-VM lab's module (marker `allvm`: tests/lab/test_vm_cluster.py, two TCG VMs) is left to
# `make test-allvm`: beside the other worker it took 22 min and once failed on a starved VM; see the README.
TEST_WORKERS ?= 2
test: VM = 1
test: setup
	$(PY) -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile) -m "not allvm and not bench" $(PYTEST_ARGS)

test-allvm: VM = 1
test-allvm: setup
	$(PY) -m pytest -p no:xdist -m allvm $(PYTEST_ARGS)

# The failover ladder end to end, cut to two rungs (tests/lab/test_ladder_run.py, about 2 min).
test-bench: setup
	$(PY) -m pytest -p no:xdist -m bench $(PYTEST_ARGS)

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
