#!/usr/bin/env bash
# Builds runtime/cuda's node-addon-api addon (build/Release/kiln_cuda.node) with the node-gyp
# that ships inside npm, offline: node headers come from the local install (nodedir), and no
# CUDA headers, driver or GPU are needed (the driver is dlopen'ed at run time).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/runtime/cuda"

gyp=""
for candidate in \
  "$(dirname "$(command -v npm)")/../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js" \
  "$(npm root -g 2>/dev/null)/npm/node_modules/node-gyp/bin/node-gyp.js" \
  "$root/node_modules/node-gyp/bin/node-gyp.js"; do
  if [ -f "$candidate" ]; then gyp="$candidate"; break; fi
done
if [ -z "$gyp" ]; then echo "build-cuda-addon: node-gyp not found (it ships with npm)" >&2; exit 1; fi

# Local node headers: an explicit npm nodedir, else the prefix that holds include/node/node.h.
nodedir="${npm_config_nodedir:-$(npm config get nodedir 2>/dev/null || true)}"
if [ -z "$nodedir" ] || [ "$nodedir" = "undefined" ] || [ ! -f "$nodedir/include/node/node.h" ]; then
  nodedir="$(cd "$(dirname "$(command -v node)")/.." && pwd)"
fi
if [ ! -f "$nodedir/include/node/node.h" ]; then
  echo "build-cuda-addon: no node headers under $nodedir/include/node (install node's headers or set npm_config_nodedir)" >&2
  exit 1
fi

export NODE_PATH="$root/node_modules"
node "$gyp" rebuild --nodedir="$nodedir" --jobs=2 >/dev/null
echo "built $root/runtime/cuda/build/Release/kiln_cuda.node"
