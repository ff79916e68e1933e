# seestack-systemd: every target runs with Debian's interpreter, the one the package runs under.
PYTHON ?= /usr/bin/python3
# Unit tests mostly wait on real processes, sockets and deadlines: run that many chunks at once.
JOBS ?= 4

.PHONY: test test-unit test-e2e deps demo demo-local deb bench clean

## make test: installs what the suite needs (as root), then unit + end-to-end tests.
test: deps
	$(PYTHON) tests/run.py -j $(JOBS) tests/unit tests/e2e

## make test-unit: the unit tests alone (no root, no containers).
test-unit:
	$(PYTHON) tests/run.py -j $(JOBS) tests/unit

## make test-e2e: the booted-systemd suite alone (root).
test-e2e: deps
	$(PYTHON) tests/run.py tests/e2e

deps:
	sh tests/install-deps.sh

## make demo: a Debian 12 container, a real timer, heartbeats at a local receiver (root).
demo: deps
	$(PYTHON) tests/e2e/demo.py

## make demo-local: the quick demo without root or containers.
demo-local:
	sh tests/demo-local.sh

## make deb: builds dist/seestack-systemd_*.deb from packaging/debian.
deb:
	sh packaging/build-deb.sh

## make bench: the performance benchmark; writes benchmarks/RESULTS.md.
bench:
	$(PYTHON) benchmarks/bench.py

clean:
	rm -rf dist build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
