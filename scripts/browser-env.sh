#!/usr/bin/env bash
# Prepares the browser tests: Debian's Chromium (installed with apt when missing, as root)
# and the npm packages of tests/browser (Playwright's driver and axe-core, as locked).
# Prints the folder of the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's chromium for the browser tests" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2 \
      || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2; }
  else
    echo "the browser tests need /usr/bin/chromium: apt-get install chromium" >&2
    exit 1
  fi
fi
dir=tests/browser
if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.agora-installed-lock" 2>/dev/null; then
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
  cp "$dir/package-lock.json" "$dir/node_modules/.agora-installed-lock"
fi
echo "$PWD/$dir"
