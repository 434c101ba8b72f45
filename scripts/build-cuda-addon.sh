#!/usr/bin/env bash
# Builds runtime/cuda's node-addon-api addon (runtime/cuda/build/Release/kiln_cuda.node)
# offline: no CUDA headers, driver or GPU are needed (the driver is dlopen'ed at run time),
# and node's headers come from the local install. Uses the node-gyp that ships inside npm;
# where there is none (a machine given only a node binary, see bench/gpu-check.sh) it calls
# the C++ compiler directly — a Node-API addon links against nothing but libdl.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/runtime/cuda"

napi_include="$(cd "$root/node_modules/node-addon-api" 2>/dev/null && pwd || true)"
if [ -z "$napi_include" ]; then echo "build-cuda-addon: node_modules/node-addon-api is missing (npm install)" >&2; exit 1; fi

gyp=""
if command -v npm >/dev/null 2>&1; then
  for candidate in \
    "$(dirname "$(command -v npm)")/../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js" \
    "$(npm root -g 2>/dev/null)/npm/node_modules/node-gyp/bin/node-gyp.js"; do
    if [ -f "$candidate" ]; then gyp="$candidate"; break; fi
  done
fi

# Local node headers: an explicit npm nodedir, else the prefix of the running node, else a copy in .tools.
nodedir="${npm_config_nodedir:-}"
if [ -z "$nodedir" ] || [ ! -f "$nodedir/include/node/node_api.h" ]; then nodedir="$(cd "$(dirname "$(command -v node)")/.." && pwd)"; fi
if [ ! -f "$nodedir/include/node/node_api.h" ] && [ -f /usr/include/node/node_api.h ]; then nodedir=/usr; fi
if [ ! -f "$nodedir/include/node/node_api.h" ] && [ -f "$root/.tools/node-headers/include/node/node_api.h" ]; then nodedir="$root/.tools/node-headers"; fi
if [ ! -f "$nodedir/include/node/node_api.h" ]; then
  echo "build-cuda-addon: no node headers (include/node/node_api.h) under $nodedir; set npm_config_nodedir" >&2
  exit 1
fi

if [ -n "$gyp" ] && [ -f "$nodedir/include/node/common.gypi" ] && [ "${KILN_ADDON_DIRECT:-0}" != 1 ]; then
  log="$(mktemp)"
  if ! NODE_PATH="$root/node_modules" node "$gyp" rebuild --nodedir="$nodedir" --jobs=2 >"$log" 2>&1; then cat "$log" >&2; rm -f "$log"; exit 1; fi
  rm -f "$log"
else
  mkdir -p build/Release
  "${CXX:-g++}" -std=c++17 -O2 -shared -fPIC -fexceptions -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DBUILDING_NODE_EXTENSION \
    -I"$nodedir/include/node" -I"$napi_include" addon/kiln-cuda.cc -o build/Release/kiln_cuda.node -ldl
fi
echo "built $root/runtime/cuda/build/Release/kiln_cuda.node"
