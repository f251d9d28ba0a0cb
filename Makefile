# The two quick-start entry points: `make demo` and `make test`.
# Each creates the virtual environment on first use, so a fresh machine needs nothing else.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,prod]'
	$(BIN)/pip check
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ocpp-opendata demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The landing page's browser test drives Debian's Chromium: Playwright never downloads a browser here.
# As root it is installed from apt; otherwise the step says the one command that installs it.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "make test needs Debian's chromium: run 'sudo apt-get install chromium' once" >&2; exit 1; \
	  fi; }

test: lint browser
	$(BIN)/pytest

clean:
	rm -rf $(VENV) data/raw data/wal data/state data/published data/dagster_home
