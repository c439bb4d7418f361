#!/usr/bin/env bash
# Static analysis of infra/ with checkov, offline. checkov lives in its own venv (.venv-checkov): its pins clash
# with the app's. The first run installs it (about a minute); later runs only scan (a few seconds).
# Exit status: non-zero when a check fails or a .bicep file cannot be parsed (checkov would otherwise count a
# parse error and exit 0; CKV_PARSE_ERROR_FAIL=true makes it fail).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=3.3.30
VENV=.venv-checkov
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# Installed at this version? Look for its metadata rather than asking pip (saves a second on every run).
if ! compgen -G "$VENV/lib/python3*/site-packages/checkov-$VERSION.dist-info" >/dev/null; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$VERSION"
fi

# No platform calls: no API key (so no results upload), no guideline download (--skip-download).
unset BC_API_KEY PRISMA_API_URL BC_FROM_BRANCH
export CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false
export CKV_PARSE_ERROR_FAIL=true
exec "$VENV/bin/checkov" --directory infra --framework bicep --quiet --compact --skip-download \
  --config-file infra/.checkov.yaml
