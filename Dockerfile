# syntax=docker/dockerfile:1
# One image for `sidekey webhook` and the injected `sidekey agent`.
# `npm run image:rootfs` produces, without Docker, exactly the files the final stage copies.

ARG NODE_IMAGE=node:20.20.2-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Dependencies first, so that source edits do not invalidate this layer. Lifecycle scripts are not
# needed: the build below is explicit, and esbuild's platform binary comes as an optional dependency.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
# Bundles with `npm run build -- --clean` and assembles /rootfs (app bundle + PATH entry). File times
# come from SOURCE_DATE_EPOCH (e.g. `--build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)`).
ARG SOURCE_DATE_EPOCH
RUN bash scripts/image-rootfs.sh --in-place /rootfs

FROM ${NODE_IMAGE}
# npm, npx, yarn and corepack are not needed at run time: fewer binaries, fewer advisories.
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx \
      /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-* \
    && groupadd --gid 65532 sidekey \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin sidekey
# The bundle has no node_modules: every dependency is inside dist/ (see scripts/build.mjs).
COPY --from=build /rootfs/ /
ENV NODE_ENV=production
USER 65532:65532
WORKDIR /app
ENTRYPOINT ["sidekey"]
CMD ["--help"]
LABEL org.opencontainers.image.title="sidekey" \
      org.opencontainers.image.description="Secrets sidecar and injector for Kubernetes: secrets in files on tmpfs, not in environment variables." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/sidekey/sidekey"
