#!/usr/bin/env bash
# Installs the static-check tools for deploy/ (checkov; hadolint where Debian has it).
#
# checkov pins many dependencies of its own, so it lives in its own virtualenv, .venv-tools/ at
# the repository root, never in the project's .venv. The script is idempotent: when the pinned
# version is already there it returns at once.
#
#   bash deploy/tools/install.sh
set -euo pipefail

CHECKOV_VERSION="3.3.30"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/.venv-tools"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

installed_version() {
  "$TOOLS/bin/python" - <<'PY' 2>/dev/null || true
from importlib.metadata import version
print(version("checkov"))
PY
}

if [[ -x "$TOOLS/bin/checkov" && "$(installed_version)" == "$CHECKOV_VERSION" ]]; then
  echo "checkov $CHECKOV_VERSION already in $TOOLS"
else
  echo "installing checkov $CHECKOV_VERSION into $TOOLS"
  [[ -x "$TOOLS/bin/python" ]] || "$PYTHON" -m venv "$TOOLS"
  log="$(mktemp)"
  if ! "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  "$TOOLS/bin/checkov" --version
fi

# hadolint: only from Debian, and only if Debian has it (bookworm does not). Otherwise skip quietly;
# the deploy tests record that hadolint is unavailable.
if ! command -v hadolint >/dev/null 2>&1 && command -v apt-cache >/dev/null 2>&1; then
  if apt-cache show hadolint >/dev/null 2>&1; then
    SUDO=""
    [[ "$(id -u)" == "0" ]] || SUDO="sudo"
    $SUDO apt-get install -y -qq hadolint >/dev/null || echo "hadolint: apt-get install failed, skipped"
  fi
fi
