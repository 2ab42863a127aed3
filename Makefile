# Two entry points for a fresh machine (Python 3.11+, pip, node/npm):
#   make test   lint, types, import contracts, the pytest suite, then Exotel's Postman
#               collection run by newman against the sandbox
#   make demo   the main job, end to end, against the embedded sandbox
# Both create the virtualenv and install what they need themselves.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed

.PHONY: test check demo lint types imports workflows docs pytest newman bench clean

$(PIP_STAMP): pyproject.toml constraints.txt requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

test: lint types imports workflows docs pytest newman

# The fast loop: lint, types, import contracts and the fast tests (tests/tiers.py).
check: lint types imports
	$(BIN)/pytest -q -m "not slow and not newman"

lint: $(PIP_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(PIP_STAMP)
	$(BIN)/mypy --strict reconciler

imports: $(PIP_STAMP)
	$(BIN)/lint-imports

workflows: $(PIP_STAMP)
	$(BIN)/shellcheck --version > /dev/null  # actionlint skips shellcheck silently without it
	$(BIN)/actionlint -shellcheck=$(BIN)/shellcheck .github/workflows/*.yml examples/config-repo/.github/workflows/*.yml
	$(BIN)/python scripts/lock.py --check
	$(BIN)/zizmor --offline --min-severity medium .github/workflows examples/config-repo/.github/workflows
	$(BIN)/hadolint Dockerfile

# The documentation site (mkdocs.yml, docs/); --strict fails on a broken link or anchor.
docs: $(PIP_STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

pytest: $(PIP_STAMP) $(NPM_STAMP)
	$(BIN)/pytest -m "not newman"

newman: $(PIP_STAMP) $(NPM_STAMP)
	$(BIN)/pytest -m newman

demo: $(PIP_STAMP)
	$(BIN)/python scripts/demo.py

bench: $(PIP_STAMP)
	$(BIN)/python benchmarks/sandbox_throughput.py
	$(BIN)/python benchmarks/sandbox_startup.py
	$(BIN)/python benchmarks/manifest_load.py
	$(BIN)/python benchmarks/plan_pure.py
	$(BIN)/python benchmarks/plan_calls.py
	$(BIN)/python benchmarks/plan_rate_limit.py
	$(BIN)/python benchmarks/apply_create.py
	$(BIN)/python benchmarks/chaos_soak.py
	$(BIN)/python benchmarks/sandbox_calls.py
	$(BIN)/python benchmarks/serve_decisions.py
	$(BIN)/python benchmarks/livekit_partner.py
	$(BIN)/python benchmarks/serve_load.py
	$(BIN)/python benchmarks/serve_handoff.py
	$(BIN)/python benchmarks/drift_shards.py
	$(BIN)/python benchmarks/cost.py
	$(BIN)/python benchmarks/check_scale.py

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache .hypothesis
