#!/usr/bin/env bash
# The Node.js runtime sidekey ships and is tested on: the version pinned in `.node-version` (the one
# place it is written down), installed from the npm registry, where `node-linux-<arch>@<version>`
# carries the official release binary (npm checks the package's integrity). Used by .ci/run (lint,
# typecheck and every test tier run on it), by the container image build (scripts/image-rootfs.sh
# --node) and by anything else that needs the image's Node.
#
#   scripts/tools/node.sh [VERSION]       install into $SIDEKEY_TOOLS/node/<version>/bin/node (cached);
#                                         prints that bin directory on stdout
#   scripts/tools/node.sh --version-only  print the pinned version
#
# VERSION defaults to `.node-version`; NODE_ARCH (x64, arm64) defaults to this machine's.
# Idempotent: does nothing when the pinned binary is already there and reports the right version.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
pinned="$(tr -d '[:space:]' <"$repo/.node-version")"
if [ "${1:-}" = "--version-only" ]; then
  echo "$pinned"
  exit 0
fi
version="${1:-$pinned}"
version="${version#v}"
case "$version" in [0-9]*.[0-9]*.[0-9]*) ;; *) echo "node.sh: not a Node version: '$version'" >&2; exit 1 ;; esac

case "$(uname -m)" in
  x86_64 | amd64) host=x64 ;;
  aarch64 | arm64) host=arm64 ;;
  *) host="$(uname -m)" ;;
esac
NODE_ARCH="${NODE_ARCH:-$host}"
case "$NODE_ARCH" in x64 | arm64) ;; *) echo "node.sh: no node-linux package for $NODE_ARCH" >&2; exit 1 ;; esac
tools="${SIDEKEY_TOOLS:-$HOME/.cache/sidekey-tools}"
dir="$tools/node/$version-linux-$NODE_ARCH"
bin="$dir/bin"

# A binary for this machine must report the pinned version; one for another architecture cannot run here.
have() {
  if [ "$NODE_ARCH" = "$host" ]; then [ "$("$bin/node" --version 2>/dev/null)" = "v$version" ]; else [ -s "$bin/node" ]; fi
}
if ! have; then
  echo "node.sh: installing node-linux-$NODE_ARCH@$version (npm registry) into $dir" >&2
  command -v npm >/dev/null || { echo "node.sh: npm is required to fetch node-linux-$NODE_ARCH" >&2; exit 1; }
  stage="$(mktemp -d "${TMPDIR:-/tmp}/sidekey-node.XXXXXX")"
  trap 'rm -rf "$stage"' EXIT
  (cd "$stage" && npm pack --silent "node-linux-$NODE_ARCH@$version" >/dev/null)
  tar -xzf "$stage"/node-linux-*.tgz -C "$stage" package/bin/node package/LICENSE
  rm -rf "$dir" && mkdir -p "$bin"
  install -m 0755 "$stage/package/bin/node" "$bin/node"
  install -m 0644 "$stage/package/LICENSE" "$dir/LICENSE"
  have || { echo "node.sh: $bin/node does not report v$version: $("$bin/node" --version 2>&1 || true)" >&2; exit 1; }
fi
echo "$bin"
