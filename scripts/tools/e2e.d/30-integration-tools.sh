#!/usr/bin/env bash
# The e2e tier also needs some integration-tier tools: helm (the chart's own `helm template` output
# installs sidekey), OpenBao and PostgreSQL (kubernetes auth, KV and dynamic database secrets).
# Reuse their install scripts (idempotent, cached in $SIDEKEY_TOOLS) rather than duplicating them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for s in 10-openbao.sh 20-postgres.sh 40-helm.sh; do
  f="$here/../integration.d/$s"
  [ -e "$f" ] || { echo "30-integration-tools: $f is missing" >&2; exit 1; }
  echo "ensure (for e2e): $s"
  bash "$f"
done
