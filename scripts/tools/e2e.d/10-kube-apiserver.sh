#!/usr/bin/env bash
# Builds kube-apiserver from Go modules (version pinned in tools/kube/go.mod) into $SIDEKEY_TOOLS/bin.
# Cached: skipped when the binary for that exact version is there. Cold build: ~15-20 min on 2 busy cores (docs/e2e.md).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mod="$(cd "$here/../../../tools/kube" && pwd)"
tools="${SIDEKEY_TOOLS:-$HOME/.cache/sidekey-tools}"
version="$(awk '{ if ($1 == "require") { $1 = ""; $0 = $0 } } $1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2 }' "$mod/go.mod")"
[ -n "$version" ] || { echo "10-kube-apiserver: no k8s.io/kubernetes pin in $mod/go.mod" >&2; exit 1; }
bin="$tools/bin/kube-apiserver"
stamp="$tools/bin/.kube-apiserver.version"
# Version stamping as Kubernetes' own build does (hack/lib/version.sh): without it the binary reports
# v0.0.0-master, and clients that decide on the server version (helm's kubeVersion check, the
# webhook's native-sidecar detection) would see a pre-1.0 server.
minor="${version#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
want="$version (stamped)"
if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "kube-apiserver $version: cached"
  exit 0
fi
command -v go >/dev/null || { echo "10-kube-apiserver: go toolchain not found (needed to build kube-apiserver)" >&2; exit 1; }
mkdir -p "$tools/bin"
echo "kube-apiserver $version: building from Go modules (slow the first time; log in $tools/kube-apiserver-build.log)"
start=$(date +%s)
# -trimpath and no VCS stamping keep the build reproducible from the module cache alone.
(cd "$mod" && nice -n 10 env CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags="$ldflags" \
  -o "$bin.tmp" k8s.io/kubernetes/cmd/kube-apiserver) >"$tools/kube-apiserver-build.log" 2>&1 || {
  tail -40 "$tools/kube-apiserver-build.log" >&2
  echo "10-kube-apiserver: go build failed" >&2
  exit 1
}
mv "$bin.tmp" "$bin"
echo "$want" >"$stamp"
echo "kube-apiserver $version: built in $(( $(date +%s) - start ))s"
