#!/usr/bin/env bash
# The CUDA target's check on a machine with an NVIDIA GPU (issue #6), in one run of a few
# minutes: builds the addon, runs the cuda device tests (ops, gradients, a training step and a
# fuzz subset against the float64 interpreter), builds and runs the standalone artifact, and
# benchmarks against PyTorch (cuBLAS matmul f32/f16, an elementwise chain against the memory
# bandwidth, the MLP step against eager and torch.compile), printing ratios.
#
# Needs: the NVIDIA driver, the CUDA toolkit (nvcc), python3 with torch. Node is optional: on
# a dev machine run `bash bench/cuda/pack-tools.sh` once and carry the git-ignored .tools/
# folder (node binary, trimmed node_modules, Node-API headers) with the working tree.
#
# usage: bash bench/gpu-check.sh            results and logs in ${OUT:-out/gpu-check}/
#        SKIP_BENCH=1 bash bench/gpu-check.sh   (tests and artifact only)
#        PROJECT_TESTS=1 …   also the project's every-available-target suites (a few minutes more)
# Exit status: 0 when every check passed; the benchmark never fails the run.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${OUT:-$root/out/gpu-check}"
mkdir -p "$out"
status=0

step() { # step <name> <command…>: runs it with its output in $out/<name>.log
  local name="$1"
  shift
  local started=$SECONDS
  echo "== $name"
  if "$@" >"$out/$name.log" 2>&1; then
    echo "   ok ($((SECONDS - started)) s)"
  else
    echo "   FAILED ($((SECONDS - started)) s), last lines of $out/$name.log:"
    tail -n 40 "$out/$name.log" | sed 's/^/   | /'
    status=1
  fi
}

echo "== machine"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader | sed 's/^/   /'
else echo "   no nvidia-smi (no NVIDIA driver?)"; fi
echo "   $( (nvcc --version 2>/dev/null || echo "no nvcc") | tail -n 1)"
python3 -c 'import torch; print("   torch", torch.__version__, "cuda", torch.version.cuda)' 2>/dev/null || echo "   no torch"
echo "   commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

# Node: the machine's if it is recent enough, else the carried copy.
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if ! command -v node >/dev/null 2>&1 || [ "$(node_major)" -lt 20 ]; then
  if [ ! -f .tools/node.xz ]; then echo "no node >= 20 here and no .tools/node.xz (run bench/cuda/pack-tools.sh on a dev machine)"; exit 1; fi
  mkdir -p .tools/bin
  xz -dc .tools/node.xz >.tools/bin/node && chmod +x .tools/bin/node
  export PATH="$root/.tools/bin:$PATH"
fi
echo "   node $(node --version)"
if [ ! -d node_modules/vitest ] || [ ! -d node_modules/tsx ]; then
  if [ ! -f .tools/node-modules.tar.xz ]; then echo "no node_modules and no .tools/node-modules.tar.xz"; exit 1; fi
  tar -xJf .tools/node-modules.tar.xz
fi

arch="sm_$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')"
[ "$arch" = "sm_" ] && arch=sm_80

step build-addon bash scripts/build-cuda-addon.sh
step device-tests env KILN_CUDA_FUZZ_SEEDS="${KILN_CUDA_FUZZ_SEEDS:-100}" node node_modules/vitest/vitest.mjs run --reporter=verbose test/targets/cuda-gpu.test.ts
if grep -q "skipped" "$out/device-tests.log"; then
  echo "   the device tests were skipped: CUDA is not usable here (see $out/device-tests.log)"
  status=1
fi
if [ "${PROJECT_TESTS:-0}" = 1 ]; then
  # The project's suites that run on every available target (cuda among them on a GPU).
  step project-tests node node_modules/vitest/vitest.mjs run test/dsl/functional-targets.test.ts test/dsl/train.test.ts test/dsl/compile.test.ts test/passes/autodiff/compile.test.ts
fi
step nvcc-ptx env KILN_REQUIRE_NVCC=1 node node_modules/vitest/vitest.mjs run test/codegen/cuda-nvcc.test.ts
step artifact bash -c "node bin/kiln.js compile examples/mlp.ts --entry trainStep --target cuda --out '$out/mnist-cuda' && cd '$out/mnist-cuda' && ARCH=$arch ./build.sh && ./run --steps 20 --out ."
grep -E "^step (1|20):|ms per step" "$out/artifact.log" 2>/dev/null | sed 's/^/   /'

if [ "${SKIP_BENCH:-0}" != 1 ]; then
  checks_status=$status
  step bench-kiln bash -c "node --import tsx bench/cuda/bench.ts >'$out/kiln.json'"
  step bench-torch bash -c "python3 bench/cuda/torch_ref.py >'$out/torch.json'"
  if [ -s "$out/kiln.json" ] && [ -s "$out/torch.json" ]; then
    python3 bench/cuda/report.py "$out/kiln.json" "$out/torch.json" | tee "$out/bench.txt"
  fi
  status=$checks_status
fi

echo "== $([ $status = 0 ] && echo "all checks passed" || echo "some checks FAILED") (logs in $out)"
exit $status
