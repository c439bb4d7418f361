#!/usr/bin/env bash
# Static analysis of infra/ with checkov, offline. checkov lives in its own venv: its pins clash with the app's.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=3.3.30
VENV=.venv-checkov
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/checkov" ] || [ "$("$VENV/bin/python" -m pip show checkov 2>/dev/null | sed -n 's/^Version: //p')" != "$VERSION" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$VERSION"
fi

# No platform calls: no API key, no guideline download, no version check.
unset BC_API_KEY PRISMA_API_URL
export CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false
"$VENV/bin/checkov" --directory infra --framework bicep --compact --skip-download \
  --config-file infra/.checkov.yaml
