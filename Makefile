# seestack-systemd: every target runs with Debian's interpreter, the one the package runs under.
PYTHON ?= /usr/bin/python3
# Unit tests mostly wait on real processes, sockets and deadlines: run that many chunks at once.
JOBS ?= 4

.PHONY: test test-unit test-e2e lint deps demo demo-local deb bench clean

## make test: installs what the suite needs (as root), then lint, unit + end-to-end tests.
test: deps lint
	$(PYTHON) tests/run.py -j $(JOBS) tests/unit tests/e2e

## make lint: Debian's mypy (as for the oldest supported Python), pycodestyle and pyflakes on the package.
lint:
	mypy --python-version 3.9 --disallow-untyped-defs seestack_systemd
	pycodestyle --max-line-length=120 seestack_systemd
	pyflakes3 seestack_systemd

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
