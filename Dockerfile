# syntax=docker/dockerfile:1
# One image for `sidekey webhook` and the injected `sidekey agent`.
# `npm run image:rootfs -- --node` produces, without Docker, exactly the files the final stage copies.
#
#   docker build -t ghcr.io/sidekey/sidekey:0.1.0 \
#     --build-arg VERSION="$(node -p 'require("./package.json").version')" \
#     --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)" .
#
# The Node.js version the image runs is pinned in .node-version (the one place): the build stage fetches
# that official binary from the npm registry (node-linux-<arch>) into the rootfs. The build stage's own
# Node only runs npm and esbuild.

ARG BUILD_IMAGE=node:24-trixie-slim
ARG BASE_IMAGE=gcr.io/distroless/cc-debian13:nonroot

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
# Dependencies first, so that source edits do not invalidate this layer. Lifecycle scripts are not
# needed: the build below is explicit, and esbuild's platform binary comes as an optional dependency.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
# Bundles with `npm run build -- --clean` and assembles /rootfs: the app bundle, its PATH entry and the
# pinned Node binary for TARGETARCH. File times come from SOURCE_DATE_EPOCH.
ARG SOURCE_DATE_EPOCH
ARG TARGETARCH
# `sidekey version` reports it (the build context has no .git): the same REVISION as the OCI label.
ARG REVISION=unknown
RUN SIDEKEY_COMMIT="${REVISION}" bash scripts/image-rootfs.sh --node --in-place /rootfs

# No shell, no package manager: glibc, libstdc++, CA certificates and a nonroot user (65532), plus the
# rootfs above. `sidekey` starts through its `#!/usr/local/bin/node` line, so the injected command
# (`sidekey agent …`) and the startup probe need nothing else.
FROM ${BASE_IMAGE}
# The bundle has no node_modules: every dependency is inside dist/ (see scripts/build.mjs).
COPY --from=build /rootfs/ /
ENV NODE_ENV=production
USER 65532:65532
WORKDIR /app
ENTRYPOINT ["sidekey"]
CMD ["--help"]
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="sidekey" \
      org.opencontainers.image.description="Secrets sidecar and injector for Kubernetes: secrets in files on tmpfs, not in environment variables." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/sidekey/sidekey" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
