#!/usr/bin/env bash
# Set up everything Sesame needs on a Debian machine, then run it.
#   scripts/dev.sh demo [ARGS]   install, then `sesame demo`
#   scripts/dev.sh test [ARGS]   install, then lint, check the layers, run the whole test suite
#   scripts/dev.sh setup         install only
# Idempotent: system packages are installed only when missing, the virtualenv is
# reused, and Python dependencies are reinstalled only when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

system_packages() {
  local want=(libzbar0 mosquitto mosquitto-clients chromium chromium-driver fonts-dejavu-core)
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then want+=(python3-venv); fi
  # The dashboard's chart library comes from npm; Debian's nodejs/npm suffice.
  if ! command -v npm >/dev/null 2>&1; then want+=(nodejs npm); fi
  local missing=()
  for p in "${want[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
}

python_env() {
  local py="${PYTHON:-python3}"
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "Sesame needs Python 3.11 or newer (found $("$py" --version 2>&1))" >&2
    exit 1
  fi
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  local stamp=.venv/.sesame-installed
  local want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "installing Python dependencies into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[test]"
    echo "$want" > "$stamp"
  fi
}

browser_assets() {
  # Third-party front-end code is a dependency, installed here, never committed.
  local stamp=sesame/dashboard/node_modules/.sesame-installed
  local want
  want="$(sha256sum sesame/dashboard/package-lock.json | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "installing dashboard browser libraries (npm ci)"
    npm ci --prefix sesame/dashboard --no-audit --no-fund --loglevel=error >/dev/null
    echo "$want" > "$stamp"
  fi
}

setup() {
  system_packages
  python_env
  browser_assets
}

cmd="${1:-}"
shift || true
case "$cmd" in
  setup) setup ;;
  demo) setup; exec .venv/bin/sesame demo "$@" ;;
  test)
    setup
    .venv/bin/ruff check .
    .venv/bin/lint-imports  # the layers of docs/design.md (contracts in pyproject.toml)
    exec .venv/bin/python -m pytest "$@"
    ;;
  *)
    echo "usage: scripts/dev.sh demo|test|setup [ARGS]" >&2
    exit 2
    ;;
esac
