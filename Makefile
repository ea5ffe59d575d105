# The two set-up commands (see README):
#   make repro   create/update .venv, then run the default pipeline (dvc repro)
#   make test    create/update .venv, then run the test suite
# Both are idempotent: the environment is re-synced only when pyproject.toml or
# uv.lock changed, and DVC skips stages whose inputs did not change.

UV_VERSION := 0.13.8
PYTHON ?= python3
# the host interpreter, resolved before PATH puts .venv/bin first (the venv has no uv or pip,
# so a re-sync after pyproject.toml or uv.lock changed must run uv from the host Python)
HOST_PYTHON := $(shell command -v $(PYTHON))
VENV := .venv
STAMP := $(VENV)/.synced
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: repro test env bench clean-env viewer

# pretrained weights (fairsplat/weights/registry.py) in $FAIRSPLAT_WEIGHTS_DIR or .weights/: the fetcher
# checks sha256 and skips files already present; the stamp makes a second `make env` free
WEIGHTS_STAMP := $(or $(FAIRSPLAT_WEIGHTS_DIR),.weights)/.fetched

env: $(STAMP) $(WEIGHTS_STAMP) viewer

# the report's 3DGS viewer (viewer/: Spark + three.js, exact versions in package-lock.json), bundled by esbuild into
# viewer/dist/viewer.js, which stage report inlines into reports/index.html. Needs node (18+); without it make env
# says so and goes on (the report then shows a message where the viewer would be). Rebuilt only when its inputs change.
VIEWER_BUNDLE := viewer/dist/viewer.js
viewer: $(VIEWER_BUNDLE)

$(VIEWER_BUNDLE): viewer/package.json viewer/package-lock.json viewer/build.mjs viewer/src/main.js
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
		cd viewer && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && node build.mjs; \
	else echo "note: node not found: the report's 3D viewer is not built (install Node.js 18+ and rerun make env)" >&2; fi

# a failed fetch (no network) warns and leaves the stamp untouched: the project runs without the
# weights (LPIPS is then reported absent, with the reason), and the next `make env` tries again
$(WEIGHTS_STAMP): fairsplat/weights/registry.py | $(STAMP)
	@if python -m fairsplat.weights fetch; then touch $@; \
	else echo "warning: pretrained weights not fetched; LPIPS will be reported absent (retry: make env)" >&2; fi

$(STAMP): pyproject.toml uv.lock
	@$(HOST_PYTHON) -m uv --version >/dev/null 2>&1 || $(HOST_PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	$(HOST_PYTHON) -m uv sync --frozen
	@touch $@

repro: env
	dvc repro

test: env
	python -m pytest -n 2 --dist loadfile

bench: $(STAMP)
	python bench/raster.py

clean-env:
	rm -rf $(VENV)
