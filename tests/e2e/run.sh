#!/usr/bin/env bash
# End-to-end tests: a real `spindle serve` driven by the official openai
# client under Node's test runner.
#   usage: tests/e2e/run.sh SPINDLE_BIN SHARED_DIR BUILD_DIR [TEST_FILE...]
# (the same arguments ctest passes to tests/cli/*.sh scripts)
# SPINDLE_MODEL overrides the model (default: a model dir built from the
# qwen3 HF fixture plus a small byte-level BPE tokenizer, see make_model.mjs).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
bin="$(realpath "$1")"
shared="$(realpath "$2")"
build="$(realpath "$3")"
shift 3
# the tests' scratch files (corrupt model copies, templates) stay in build/
export TMPDIR="$build/tmp"
mkdir -p "$TMPDIR"

# (again whenever one of package.json's packages is missing, e.g. one added)
for pkg in openai playwright-core @anthropic-ai/sdk; do
    if [[ ! -f "$here/node_modules/$pkg/package.json" ]]; then
        echo "e2e: installing node packages (npm ci)" >&2
        (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
        break
    fi
done

model="${SPINDLE_MODEL:-}"
if [[ -z "$model" ]]; then
    export SPINDLE_FIXTURE="$shared/fixtures/qwen3" # its reference.json checks greedy ids
    model="$build/e2e-model"
    node "$here/make_model.mjs" "$shared/fixtures/qwen3" "$model"
fi

# the vision tests build their own model directories from these
export SPINDLE_SHARED="$shared" SPINDLE_BUILD="$build"

files=("$@")
if [[ ${#files[@]} -eq 0 ]]; then
    files=("$here"/*.test.mjs)
fi
SPINDLE_BIN="$bin" SPINDLE_MODEL="$model" node --test --test-concurrency=1 "${files[@]}"
