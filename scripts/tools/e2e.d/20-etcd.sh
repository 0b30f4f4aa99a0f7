#!/usr/bin/env bash
# Builds etcd from Go modules (version pinned in tools/kube/etcd/go.mod) into $SIDEKEY_TOOLS/bin.
# Debian's etcd-server package is 3.4, which current kube-apiservers no longer support, hence the build.
# Cached: skipped when the binary for that exact version is there.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mod="$(cd "$here/../../../tools/kube/etcd" && pwd)"
tools="${SIDEKEY_TOOLS:-$HOME/.cache/sidekey-tools}"
version="$(awk '{ if ($1 == "require") { $1 = ""; $0 = $0 } } $1 == "go.etcd.io/etcd/server/v3" && $2 ~ /^v/ { print $2 }' "$mod/go.mod")"
[ -n "$version" ] || { echo "20-etcd: no go.etcd.io/etcd/server/v3 pin in $mod/go.mod" >&2; exit 1; }
bin="$tools/bin/etcd"
stamp="$tools/bin/.etcd.version"
if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
  echo "etcd $version: cached"
  exit 0
fi
command -v go >/dev/null || { echo "20-etcd: go toolchain not found (needed to build etcd)" >&2; exit 1; }
mkdir -p "$tools/bin"
echo "etcd $version: building from Go modules (log in $tools/etcd-build.log)"
start=$(date +%s)
(cd "$mod" && nice -n 10 env CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags='-s -w' \
  -o "$bin.tmp" go.etcd.io/etcd/server/v3) >"$tools/etcd-build.log" 2>&1 || {
  tail -40 "$tools/etcd-build.log" >&2
  echo "20-etcd: go build failed" >&2
  exit 1
}
mv "$bin.tmp" "$bin"
echo "$version" >"$stamp"
echo "etcd $version: built in $(( $(date +%s) - start ))s"
