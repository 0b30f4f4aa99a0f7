#!/usr/bin/env bash
# Builds the node side of the e2e cluster from the same k8s.io/kubernetes module as kube-apiserver
# (tools/kube/go.mod): the kubelet, and kube-controller-manager (run with its Job controller only,
# so that a Job's pods are created and the Job reaches Complete). Into $SIDEKEY_TOOLS/bin, cached
# per version like kube-apiserver. Cold compile after kube-apiserver (build cache shared): docs/e2e.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mod="$(cd "$here/../../../tools/kube" && pwd)"
tools="${SIDEKEY_TOOLS:-$HOME/.cache/sidekey-tools}"
version="$(awk '{ if ($1 == "require") { $1 = ""; $0 = $0 } } $1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2 }' "$mod/go.mod")"
[ -n "$version" ] || { echo "40-kubelet: no k8s.io/kubernetes pin in $mod/go.mod" >&2; exit 1; }
# Version stamping as in 10-kube-apiserver.sh (the kubelet reports it as the node's kubeletVersion).
minor="${version#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
want="$version (stamped)"
mkdir -p "$tools/bin"
for name in kubelet kube-controller-manager; do
  bin="$tools/bin/$name"
  stamp="$tools/bin/.$name.version"
  if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "$name $version: cached"
    continue
  fi
  command -v go >/dev/null || { echo "40-kubelet: go toolchain not found (needed to build $name)" >&2; exit 1; }
  echo "$name $version: building from Go modules (log in $tools/$name-build.log)"
  start=$(date +%s)
  # Static, as Kubernetes' own release builds of these binaries (CGO_ENABLED=0).
  (cd "$mod" && nice -n 10 env CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags="$ldflags" \
    -o "$bin.tmp" "k8s.io/kubernetes/cmd/$name") >"$tools/$name-build.log" 2>&1 || {
    tail -40 "$tools/$name-build.log" >&2
    echo "40-kubelet: go build of $name failed" >&2
    exit 1
  }
  mv "$bin.tmp" "$bin"
  echo "$want" >"$stamp"
  echo "$name $version: built in $(( $(date +%s) - start ))s"
done
