# Two commands on a fresh machine: `make demo` and `make test`.
# Everything they need is installed here, never by hand.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
APT_UPDATED := /tmp/.civicpulse-apt-updated

.PHONY: demo test lint unit bench install system-deps monitoring-deps browser-deps kafka-libs clean-data

# --- installs ---------------------------------------------------------------------------

$(APT_UPDATED):
	@command -v apt-get >/dev/null || { echo "apt-get not found: install Java 17+ and Maven yourself"; exit 1; }
	apt-get update -qq
	@touch $@

# Java (>= 17) and Maven build and run the local Kafka broker.
system-deps:
	@if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then \
	  $(MAKE) --no-print-directory $(APT_UPDATED) && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless maven; \
	fi
	@java -version 2>&1 | head -1
	@mvn -v 2>/dev/null | head -1

# Prometheus and Alertmanager (with promtool and amtool) check the ops/ configs and run in the
# alerting tests. Debian bookworm ships prometheus 2.42 and alertmanager 0.25; Debian names
# the Alertmanager binary prometheus-alertmanager (upstream: alertmanager), either will do.
monitoring-deps:
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null \
	    || ! command -v amtool >/dev/null \
	    || ! { command -v alertmanager || command -v prometheus-alertmanager; } >/dev/null; then \
	  $(MAKE) --no-print-directory $(APT_UPDATED) && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager; \
	fi
	@prometheus --version 2>&1 | head -1
	@amtool --version 2>&1 | head -1

# Headless Chromium opens the public report in the tests (charts rendered, screenshot).
browser-deps:
	@if ! command -v chromium >/dev/null; then \
	  $(MAKE) --no-print-directory $(APT_UPDATED) && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	fi
	@chromium --version 2>/dev/null | head -1

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

install: $(STAMP) system-deps monitoring-deps browser-deps kafka-libs

kafka-libs: $(STAMP) system-deps
	$(PY) -c "from streams.kafka_runtime import ensure_built; print('kafka libs:', ensure_built())"

# --- the two commands -------------------------------------------------------------------

demo: install
	$(VENV)/bin/civicpulse demo

test: install lint
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check streams tests benchmarks dashboards
	$(VENV)/bin/mypy

bench: install
	$(PY) benchmarks/pipeline.py

clean-data:
	-$(VENV)/bin/civicpulse kafka down
	rm -rf .civicpulse
