#!/usr/bin/env bash
# Bounded load test against a real `spindle serve` on loopback; stops by
# itself (see load.mjs for what it asserts).
#   usage: tests/load/run.sh SPINDLE_BIN SHARED_DIR BUILD_DIR
#   LOAD_REQUESTS (2000; 1000 for a sanitizer build), LOAD_CLIENTS (32),
#   LOAD_CANCEL (0.1), LOAD_RSS_MB (RSS growth bound after the warm-up: 32;
#   96 for a sanitizer build), LOAD_SEED (1)
# Against an ASan build (-DSP_SANITIZE=address) the server's exit runs
# LeakSanitizer; a report fails the run.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
e2e="$here/../e2e"
bin="$(realpath "$1")"
shared="$(realpath "$2")"
build="$(realpath "$3")"

if [[ ! -f "$e2e/node_modules/openai/package.json" ]]; then
    echo "load: installing node packages (npm ci)" >&2
    (cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error)
fi

model="${SPINDLE_MODEL:-}"
if [[ -z "$model" ]]; then
    model="$build/e2e-model"
    node "$e2e/make_model.mjs" "$shared/fixtures/qwen3" "$model"
fi

if grep -qa '__asan_init\|__tsan_init' "$bin"; then
    # a sanitizer build runs ~15x slower: fewer requests by default. ASan
    # keeps freed memory in a quarantine (256 MB by default) that would read
    # as RSS growth: a small one keeps the RSS bound meaningful. LeakSanitizer
    # runs at the server's exit; its report fails the run.
    export LOAD_REQUESTS="${LOAD_REQUESTS:-1000}"
    export LOAD_RSS_MB="${LOAD_RSS_MB:-96}"
    # (the caller's ASAN_OPTIONS come last, so they win)
    export ASAN_OPTIONS="quarantine_size_mb=16:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
fi
SPINDLE_BIN="$bin" SPINDLE_MODEL="$model" exec node "$here/load.mjs"
