#!/usr/bin/env bash
# One command on a fresh machine: install git-lfs and llava-vit (in .venv), then run `llava-vit demo`:
# scaffold a model repo with copier, commit through the hooks, push to a local Hub, load it back by repo id.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! git lfs version >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq git-lfs >/dev/null
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq git-lfs >/dev/null
  fi
fi
if [ ! -x .venv/bin/llava-vit ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
  .venv/bin/pip install -q --disable-pip-version-check -e .
fi
exec .venv/bin/llava-vit demo "$@"
