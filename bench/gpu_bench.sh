#!/usr/bin/env bash
# GPU speed on the big shapes, from a build with the CUDA backend:
#   bench/gpu_bench.sh [BUILD_DIR] [OUT_DIR]
# - Gemma-4-31B- and Gemma-4-26B-A4B-shaped models with random weights made
#   on the GPU from bench/shapes/*/config.json (--load-format dummy: their
#   62 / 50 GB files would not fit the GPU machine's disk),
# - a real Llama-3-8B-shaped bf16 safetensors directory
#   (bench/gen_hf_model.py) and the same shape as GGUF Q4_K and Q8_0
#   (bench/gen_bench_model.c), written to OUT_DIR (about 30 GB),
# each through `spindle bench --device cuda --json` (pp512, tg batch 1, the
# device's copy bandwidth and bf16 GEMM probes, GPU memory), with and
# without CUDA graphs. One JSON line per run on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$here/build/release}"
out="${2:-/tmp/spindle-gpu-bench}"
bin="$build/spindle"
mkdir -p "$out"
run() { "$bin" bench --device cuda -p 512 -n 64 -r 3 --json "$@" 2>/dev/null | tail -1; }
for m in gemma4-31b gemma4-26b-a4b; do
    run --model "$here/bench/shapes/$m" --load-format dummy
    SPINDLE_NO_CUDA_GRAPHS=1 run --model "$here/bench/shapes/$m" --load-format dummy
done
[ -f "$out/l8/model.safetensors" ] ||
    python3 "$here/bench/gen_hf_model.py" "$out/l8" 32 4096 14336 32 8 128256 >/dev/null
run --model "$out/l8"
gen="$out/gen_bench_model"
[ -x "$gen" ] || cc -O2 -I"$here/src" "$here/bench/gen_bench_model.c" "$build/libsp_formats.a" \
    "$build/libsp_compute.a" "$build/libsp_base.a" -ljansson -lm -pthread -o "$gen"
for t in q4_k q8_0; do
    [ -f "$out/l8-$t.gguf" ] || "$gen" "$out/l8-$t.gguf" "$t" 32 4096 14336 32 8 128256 >/dev/null
    run --model "$out/l8-$t.gguf"
done
