#!/usr/bin/env bash
# Prepares the Python environment of the interoperability tests (the ADBC Flight SQL
# driver from PyPI) and prints its interpreter. Reused while the requirements are met.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${AGORA_PYTHON_ENV:-$HOME/.cache/agora-python}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
frozen=$("$venv/bin/python" -m pip freeze 2>/dev/null || true)
missing=0
while read -r req; do
  [[ -z "$req" || "$req" == \#* ]] && continue
  grep -qxF "$req" <<<"$frozen" || missing=1
done < tests/interop/requirements.txt
if [ "$missing" = 1 ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r tests/interop/requirements.txt >&2
fi
echo "$venv/bin/python"
