# Build and test plumbing for the sandbox kit.
# Everything runs from a virtual environment in .venv (Debian's system Python
# is externally managed, PEP 668).  `make setup` is idempotent and takes about
# a second when nothing is missing.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON      ?= python3
VENV        := .venv
VPY         := $(VENV)/bin/python
STAMP       := $(VENV)/.stamp
# configurable-http-proxy (npm) for the classroom test: JupyterHub's proxy, in the venv's folder
CHP         := $(VENV)/chp/node_modules/.bin/configurable-http-proxy
PYTEST_ARGS ?=

# System packages; docs/dependencies.md says why each one is here.
APT_PACKAGES := busybox-static fuse-overlayfs gcc libc6-dev skopeo umoci oci-image-tool docker-registry \
                debootstrap zstd runc apache2-utils tini iproute2 uidmap \
                libseccomp2 openssl libnftables1 nftables iputils-ping docker.io docker-compose proot slirp4netns

.PHONY: help setup system-deps test cgroup2 rootless lint graph lab daemon interop browser bench clean

help: ## list the targets
	@echo "Targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
	    sed -E 's/^([a-z-]+):.*## (.*)/  make \1\t\2/' | expand -t 22
	@echo "Pass extra pytest arguments with PYTEST_ARGS='-k store -x'."

setup: system-deps $(STAMP) $(CHP) ## install system packages (as root) and the .venv

system-deps: ## install missing apt packages (only when root; otherwise explain)
	@set -euo pipefail; \
	pkgs="$(APT_PACKAGES)"; \
	if ! $(PYTHON) -m venv --help >/dev/null 2>&1 || \
	   ! $(PYTHON) -c 'import ensurepip' >/dev/null 2>&1; then \
	    pkgs="$$pkgs python3-venv"; \
	fi; \
	if ! command -v dpkg-query >/dev/null; then \
	    echo "setup: not a Debian system; make sure these are installed: $$pkgs"; \
	    exit 0; \
	fi; \
	missing=""; \
	for p in $$pkgs; do \
	    status=$$(dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null || true); \
	    [ "$$status" = "install ok installed" ] || missing="$$missing $$p"; \
	done; \
	if [ "$$(id -u)" -eq 0 ] && command -v groupadd >/dev/null && ! getent group sandbox >/dev/null; then \
	    echo "setup: creating the group sandbox (members may use the API daemon's socket: as good as root)"; \
	    groupadd --system sandbox; \
	fi; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" -eq 0 ]; then \
	    echo "setup: installing apt packages:$$missing"; \
	    apt-get update -qq; \
	    guard=""; \
	    if echo " $$missing " | grep -q " docker.io " && [ ! -e /usr/sbin/policy-rc.d ]; then \
	        guard=/usr/sbin/policy-rc.d; printf '#!/bin/sh\nexit 101\n' > $$guard; chmod +x $$guard; \
	    fi; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends $$missing || { [ -z "$$guard" ] || rm -f $$guard; exit 1; }; \
	    if [ -n "$$guard" ]; then \
	        rm -f $$guard; \
	        if [ -d /run/systemd/system ]; then \
	            systemctl disable --quiet docker.service docker.socket containerd.service 2>/dev/null || true; \
	        fi; \
	        echo "setup: docker.io is here for its client (the tests drive our API daemon with it);"; \
	        echo "setup: Docker's own daemon was not started (systemctl enable --now docker to use it)"; \
	    fi; \
	else \
	    echo "setup: these apt packages are missing:$$missing"; \
	    echo "setup: install them with: sudo apt-get install --no-install-recommends$$missing"; \
	    echo "setup: continuing; tests that need them will be skipped with a reason."; \
	fi

$(VPY): | system-deps
	$(PYTHON) -m venv $(VENV)

# Re-installs only when pyproject.toml is newer than the stamp.  editable_mode=compat
# puts the checkout on sys.path with a plain .pth line; the default mode installs an
# import hook that costs every interpreter start, and so every cold `sandbox`
# command, about 20 ms (pathlib and urllib.parse imported by the hook).
$(STAMP): pyproject.toml | $(VPY)
	$(VPY) -m pip install --quiet --disable-pip-version-check --config-settings editable_mode=compat -e '.[dev,lab,classroom]'
	touch $(STAMP)

# Best effort (a few seconds): without npm, or without the npm registry, the classroom test skips and says why.
$(CHP): | $(VPY)
	@if command -v npm >/dev/null; then \
	    npm install --prefix $(VENV)/chp --no-audit --no-fund --loglevel=error configurable-http-proxy@5 \
	        || echo "setup: npm could not install configurable-http-proxy; tests/integration/test_classroom.py will skip"; \
	else \
	    echo "setup: no npm, so no configurable-http-proxy; tests/integration/test_classroom.py will skip"; \
	fi

test: setup ## run unit, integration and lab tests, then the cgroup v2 and rootless tiers (the CI gate)
	$(VPY) -m pytest tests/unit tests/integration tests/conformance tests/labs -q -ra $(PYTEST_ARGS)
	$(VPY) tools/cgroup2_tier.py
	$(VPY) tools/rootless_tier.py

cgroup2: setup ## the cgroup v2 tier alone: tests and labs on a pure cgroup2 /sys/fs/cgroup (root)
	$(VPY) tools/cgroup2_tier.py $(PYTEST_ARGS)

rootless: setup ## the rootless tier alone: the container and build tests as a user made for it (root)
	$(VPY) tools/rootless_tier.py $(PYTEST_ARGS)

lint: setup ## type-check the engine and the magics (mypy), then ruff (rules in pyproject.toml)
	$(VPY) -m mypy sandbox magics --ignore-missing-imports
	$(VPY) -m ruff check sandbox magics tools tests benchmarks

graph: setup ## write the import layers' table and drawing into docs/design.md (tools/importgraph.py)
	$(VPY) tools/importgraph.py --write-docs

lab: system-deps $(STAMP) ## start JupyterLab on 127.0.0.1 with the labs/ folder (a user gets the rootless kernel)
	@if [ "$$(id -u)" -ne 0 ]; then $(VPY) -m sandbox.rootless --install-kernel; fi
	@$(VPY) -m sandbox info | grep -E "Privilege Mode|allows|Why" || true
	JUPYTER_PREFER_ENV_PATH=$$( [ "$$(id -u)" -eq 0 ] && echo 1 || echo 0 ) \
	    $(VENV)/bin/jupyter lab --notebook-dir=labs --ip=127.0.0.1 --no-browser \
	    $$( [ "$$(id -u)" -eq 0 ] && echo --allow-root )

daemon: setup ## serve the Docker Engine API in the foreground (unix:///run/sandbox/docker.sock as root)
	$(VENV)/bin/sandbox daemon $(DAEMON_ARGS)

interop: setup ## side-by-side tests against Docker/Podman
	@if [ -d tests/interop ]; then \
	    $(VPY) -m pytest tests/interop -q -ra $(PYTEST_ARGS); \
	else \
	    echo "interop: tests/interop does not exist yet; the tier is empty."; \
	fi

browser: setup ## opt-in: JupyterLab in headless Chromium renders the widgets (installs chromium, selenium)
	@if ! command -v chromedriver >/dev/null; then \
	    if [ "$$(id -u)" -eq 0 ]; then \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	            --no-install-recommends chromium chromium-driver; \
	    else echo "browser: install chromium and chromium-driver (apt) first"; exit 1; fi; \
	fi
	$(VPY) -m pip install --quiet --disable-pip-version-check 'selenium>=4.10'
	$(VPY) -m pytest tests/browser -q -ra -p no:cacheprovider $(PYTEST_ARGS)

bench: setup ## run benchmarks/bench_*.py (reports ratios, never asserts)
	@set -uo pipefail; shopt -s nullglob; \
	files=(benchmarks/bench_*.py); \
	if [ $${#files[@]} -eq 0 ]; then \
	    echo "bench: there are no benchmarks yet (benchmarks/bench_*.py)."; exit 0; \
	fi; \
	failed=0; results=$$(mktemp); export BENCH_RESULTS=$$results; \
	for f in "$${files[@]}"; do \
	    echo "== $$f"; \
	    $(VPY) "$$f" || { echo "bench: $$f failed"; failed=1; }; \
	done; \
	$(VPY) benchmarks/summary.py "$$results"; rm -f "$$results"; \
	exit $$failed

clean: ## remove .venv and caches
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
