#!/usr/bin/env bash
# The test command of README.md. Store tests also run against PostgreSQL when
# AGORA_TEST_POSTGRES_URL is set (.ci/run starts one and sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/agora-target}
# The shared target directory may hold test binaries built from another checkout of the
# same sources (cargo reuses them): snapshots are looked up under this checkout.
export INSTA_WORKSPACE_ROOT=$PWD
# The interoperability tests use real clients: the ADBC Flight SQL driver from PyPI.
AGORA_PYTHON=$(bash scripts/python-env.sh)
export AGORA_PYTHON
# The browser tests drive Debian's Chromium with Playwright (tests/browser).
AGORA_BROWSER_TESTS=$(bash scripts/browser-env.sh)
export AGORA_BROWSER_TESTS
if cargo nextest --version >/dev/null 2>&1; then
  # One process per test: the streaming-memory test measures the whole process heap.
  exec cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  echo "cargo-nextest not found; running cargo test one test at a time" >&2
  exec cargo test --workspace --locked --no-fail-fast -- --test-threads=1 "$@"
fi
