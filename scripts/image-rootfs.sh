#!/usr/bin/env bash
# Produce exactly the files the container image's final stage copies (`COPY --from=build /rootfs/ /`),
# without Docker, so that the image's content can be built, inspected and compared anywhere.
#
#   scripts/image-rootfs.sh [--node] [--commit REV] [OUT]   # default OUT: ${TMPDIR:-/tmp}/sidekey-image-rootfs
#     1. copies the build context (the allow-list in .dockerignore) from the work tree (what
#        `docker build .` sees) or, with --commit, from that commit (`git archive`), to a staging
#        directory, never touching the work tree's own dist/ or node_modules/;
#     2. there, runs what the Dockerfile's build stage runs: `npm ci --ignore-scripts`, then step 3;
#   scripts/image-rootfs.sh [--node] --in-place OUT  # (the Dockerfile's build stage) in a clean tree:
#     3. `npm run build -- --clean`, then assembles OUT:
#          /app/package.json       minimal: name, version, "type": "module" (the bundle is ESM)
#          /app/bin/sidekey.js     the entry point, its first line `#!/usr/local/bin/node <option>`
#                                  (IMAGE_NODE_OPTION, sidecar/v8-flags.ts): the image has no
#                                  /usr/bin/env and no shell, the kernel starts node directly
#          /app/dist/*.js          the esbuild bundle: every dependency inside, no node_modules
#          /usr/local/bin/sidekey  -> /app/bin/sidekey.js (the agent's default command is `sidekey`)
#          /usr/local/bin/node     with --node: the official Node binary of the version pinned in
#                                  .node-version (scripts/tools/node.sh; NODE_ARCH, or Docker's
#                                  TARGETARCH, picks x64/arm64), and its LICENSE in
#                                  /usr/local/share/doc/node/. The image's base then only has to
#                                  provide glibc and libstdc++ (distroless cc).
#        with normalised modes and timestamps (SOURCE_DATE_EPOCH), and prints a sha256 manifest;
#        two runs on the same commit print the same manifest.
set -euo pipefail

in_place=false
commit=""
with_node=false
while [ $# -gt 0 ]; do
  case "$1" in
    --in-place) in_place=true; shift ;;
    --commit) commit="${2:?--commit needs a revision}"; shift 2 ;;
    --node) with_node=true; shift ;;
    *) break ;;
  esac
done
out="${1:-${TMPDIR:-/tmp}/sidekey-image-rootfs}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac

if ! $in_place; then
  repo="$(cd "$(dirname "$0")/.." && pwd)"
  stage="$(mktemp -d "${TMPDIR:-/tmp}/sidekey-image-build.XXXXXX")"
  trap 'rm -rf "$stage"' EXIT
  # The same files Docker sends as the build context: the "!" lines of .dockerignore.
  if [ -n "$commit" ]; then
    mapfile -t context < <(git -C "$repo" show "$commit:.dockerignore" | sed -n 's/^!\(.*\)$/\1/p' | sed 's#/$##')
    git -C "$repo" archive --format=tar "$commit" -- "${context[@]}" | tar -xf - -C "$stage"
  else
    mapfile -t context < <(sed -n 's/^!\(.*\)$/\1/p' "$repo/.dockerignore" | sed 's#/$##')
    (cd "$repo" && tar -cf - --exclude='*.tmp' "${context[@]}") | tar -xf - -C "$stage"
  fi
  # The staging copy has no .git: pass the commit `sidekey version` reports.
  if [ -z "${SIDEKEY_COMMIT:-}" ] && git -C "$repo" rev-parse HEAD >/dev/null 2>&1; then
    SIDEKEY_COMMIT="$(git -C "$repo" rev-parse "${commit:-HEAD}")"
    export SIDEKEY_COMMIT
  fi
  if [ -z "${SOURCE_DATE_EPOCH:-}" ] && git -C "$repo" rev-parse HEAD >/dev/null 2>&1; then
    SOURCE_DATE_EPOCH="$(git -C "$repo" log -1 --format=%ct "${commit:-HEAD}")"
    export SOURCE_DATE_EPOCH
  fi
  echo "image-rootfs: npm ci in $stage" >&2
  (cd "$stage" && nice -n 10 npm ci --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error >&2)
  node_opt=()
  if $with_node; then node_opt=(--node); fi
  (cd "$stage" && bash scripts/image-rootfs.sh "${node_opt[@]}" --in-place "$out")
  exit 0
fi

# --- in place: build and assemble -------------------------------------------------------------
# 1980-01-01, the earliest time zip-based tools accept, when no commit time is given.
epoch="${SOURCE_DATE_EPOCH:-315532800}"
nice -n 10 npm run build --silent -- --clean >&2

rm -rf "$out"
mkdir -p "$out/app/bin" "$out/app/dist" "$out/usr/local/bin"
# The image has neither /usr/bin/env nor a shell: the kernel runs the interpreter named on line 1,
# with at most one option: IMAGE_NODE_OPTION in sidecar/v8-flags.ts (a small young generation, which
# only a starting Node can be given; docs/agent.md, "Start-up and memory").
node_option="$(sed -n "s/^export const IMAGE_NODE_OPTION = '\(--[a-z0-9=-]*\)';$/\1/p" sidecar/v8-flags.ts)"
[ -n "$node_option" ] || { echo "image-rootfs: no IMAGE_NODE_OPTION in sidecar/v8-flags.ts" >&2; exit 1; }
{ echo "#!/usr/local/bin/node $node_option"; tail -n +2 bin/sidekey.js; } >"$out/app/bin/sidekey.js"
chmod 0755 "$out/app/bin/sidekey.js"
# Source maps stay out: the image runs without --enable-source-maps, and they double its size.
find dist -maxdepth 1 -name '*.js' -exec install -m 0644 {} "$out/app/dist/" \;
node -e '
  const p = require("./package.json");
  const min = { name: p.name, version: p.version, description: p.description, license: p.license,
    type: p.type, bin: p.bin, engines: p.engines };
  process.stdout.write(JSON.stringify(min, null, 2) + "\n");
' >"$out/app/package.json"
chmod 0644 "$out/app/package.json"
ln -s /app/bin/sidekey.js "$out/usr/local/bin/sidekey"
run_node=node
if $with_node; then
  # Docker sets TARGETARCH (amd64, arm64) in the build stage; node-linux-* packages say x64/arm64.
  if [ -z "${NODE_ARCH:-}" ] && [ -n "${TARGETARCH:-}" ]; then
    case "$TARGETARCH" in amd64) NODE_ARCH=x64 ;; arm64) NODE_ARCH=arm64 ;;
      *) echo "image-rootfs: no Node binary for TARGETARCH=$TARGETARCH" >&2; exit 1 ;; esac
    export NODE_ARCH
  fi
  node_bin="$(bash scripts/tools/node.sh)"
  install -m 0755 "$node_bin/node" "$out/usr/local/bin/node"
  mkdir -p "$out/usr/local/share/doc/node"
  install -m 0644 "$node_bin/../LICENSE" "$out/usr/local/share/doc/node/LICENSE"
  # Smoke-test with the image's own Node when it can run here.
  if "$out/usr/local/bin/node" --version >/dev/null 2>&1; then run_node="$out/usr/local/bin/node"; fi
fi
find "$out" -type d -exec chmod 0755 {} +
find "$out" -exec touch -h -d "@$epoch" {} +

# Smoke test outside any node_modules: the bundle must be self-contained.
version="$(cd / && "$run_node" "$out/app/bin/sidekey.js" --version)"
want="$(node -p 'require("./package.json").version')"
if [ "$version" != "$want" ]; then
  echo "image-rootfs: smoke test failed: sidekey --version printed '$version', want '$want'" >&2
  exit 1
fi
(cd / && "$run_node" "$out/app/bin/sidekey.js" webhook --help >/dev/null)

manifest="$(cd "$out" && find . \( -type f -o -type l \) -print0 | sort -z | while IFS= read -r -d '' f; do
  if [ -L "$f" ]; then printf 'symlink %s -> %s\n' "$f" "$(readlink "$f")"; else
    printf '%s %s %s\n' "$(stat -c %a "$f")" "$(sha256sum <"$f" | cut -d' ' -f1)" "$f"; fi
done)"
echo "$manifest"
files="$(echo "$manifest" | wc -l)"
bytes="$(du -sb "$out" | cut -f1)"
digest="$(echo "$manifest" | sha256sum | cut -d' ' -f1)"
echo "image-rootfs: $out: $files entries, $bytes bytes, manifest sha256 $digest" >&2
