#!/usr/bin/env bash
# Makes sure the real servers a test tier needs are installed, installing/building them if missing.
# Usage: ensure.sh integration|e2e. Fails loudly (non-zero) when a tool cannot be had: tests never skip.
# Built tools are cached in $SIDEKEY_TOOLS (default: $HOME/.cache/sidekey-tools, outside the clone so
# that a fresh clone in CI reuses them); .tools in the repo is a symlink to it.
set -euo pipefail
tier="${1:-integration}"
here="$(cd "$(dirname "$0")" && pwd)"
export SIDEKEY_TOOLS="${SIDEKEY_TOOLS:-$HOME/.cache/sidekey-tools}"
mkdir -p "$SIDEKEY_TOOLS/bin"
repo="$(cd "$here/../.." && pwd)"
[ -e "$repo/.tools" ] || ln -s "$SIDEKEY_TOOLS" "$repo/.tools"
for f in "$here"/"$tier".d/*.sh; do
  [ -e "$f" ] || continue
  echo "ensure: $(basename "$f")"
  bash "$f"
done
