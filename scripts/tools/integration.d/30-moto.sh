#!/usr/bin/env bash
# moto_server (a local AWS API server, PyPI, pinned) for the AWS Secrets Manager integration tests.
# Installed into a venv in $SIDEKEY_TOOLS; $SIDEKEY_TOOLS/bin/moto_server links to it.
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail
MOTO_VERSION=5.2.5

tools="${SIDEKEY_TOOLS:-$HOME/.cache/sidekey-tools}"
bin="$tools/bin"
mkdir -p "$bin"
venv="$tools/venv-moto"
stamp="$venv/.sidekey-pins"
want="moto[server]==$MOTO_VERSION"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -x "$venv/bin/moto_server" ]; then
  echo "30-moto: installing $want into $venv"
  command -v python3 >/dev/null || { echo "30-moto: python3 is required" >&2; exit 1; }
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$want"
  echo "$want" >"$stamp"
fi
ln -sf "$venv/bin/moto_server" "$bin/moto_server"
"$venv/bin/python" -c 'import moto; assert moto.__version__ == "'"$MOTO_VERSION"'", moto.__version__'
echo "30-moto: moto_server $MOTO_VERSION"
