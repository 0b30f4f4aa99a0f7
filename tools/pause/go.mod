// The pause process of the e2e node's pod sandboxes. Built by scripts/tools/e2e.d/50-node-runtime.sh
// into $SIDEKEY_TOOLS/bin/pause; never part of the product.
module sidekey.local/tools/pause

go 1.26.0
