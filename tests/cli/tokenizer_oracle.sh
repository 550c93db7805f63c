#!/usr/bin/env bash
# Compares `spindle tokenize --batch` with an independent implementation
# (@lenml/tokenizers, a transformers.js fork, run in Node) on 200 generated
# strings per tokenizer (long words, CJK, emoji, digits, whitespace mixes,
# special-token text, rare code points).
#   usage: tokenizer_oracle.sh SPINDLE SHARED_DIR BUILD_DIR
set -uo pipefail

spindle="$1"
build="$3"
src="$(cd "$(dirname "$0")/../.." && pwd)"
toks="${SP_TOKENIZERS_DIR:-$src/build/tokenizers}"
oracle="$src/bench/tokenizer-baseline/oracle.mjs"
modules="${SP_NODE_MODULES:-$build/node-oracle}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fail() { echo "tokenizer_oracle: FAIL: $*" >&2; exit 1; }

[[ -x "$spindle" ]] || fail "no spindle binary at $spindle"

for name in gemma3 llama3_1 qwen3; do
    [[ -s "$toks/$name/tokenizer.json" ]] ||
        fail "$toks/$name/tokenizer.json missing: run scripts/fetch-tokenizers.sh"
done
if [[ ! -d "$modules/node_modules/@lenml/tokenizers" ]]; then
    mkdir -p "$modules"
    [[ -f "$modules/package.json" ]] || echo '{"private": true}' >"$modules/package.json"
    (cd "$modules" && npm install --silent --no-audit --no-fund @lenml/tokenizers@3.7.2) ||
        fail "could not npm install @lenml/tokenizers into $modules"
fi
export SP_NODE_MODULES="$modules"

passed=0 failed=0 seed=11
for name in gemma3 llama3_1 qwen3; do
    seed=$((seed + 1))
    node "$oracle" gen 200 "$seed" >"$work/strings.json" || fail "node oracle gen"
    node "$oracle" encode "$toks/$name" "$work/strings.json" >"$work/want.txt" ||
        fail "node oracle encode ($name)"
    "$spindle" tokenize --model "$toks/$name" --no-add-special --batch "$work/strings.json" \
        >"$work/got.txt" || fail "spindle tokenize --batch ($name)"
    bad=$(paste -d '\n' "$work/want.txt" "$work/got.txt" | paste - - | awk -F'\t' '$1 != $2 {print NR}')
    if [[ -n "$bad" ]]; then
        failed=$((failed + 1))
        for line in $(echo "$bad" | head -5); do
            echo "$name: string $line: $(node -e 'const s=require(process.argv[1]);console.log(JSON.stringify(s[+process.argv[2]-1]))' "$work/strings.json" "$line")" >&2
            echo "  oracle:  $(sed -n "${line}p" "$work/want.txt")" >&2
            echo "  spindle: $(sed -n "${line}p" "$work/got.txt")" >&2
        done
        echo "$name: $(echo "$bad" | wc -l) of 200 strings differ" >&2
    else
        passed=$((passed + 1))
        echo "$name: 200 strings agree with the oracle"
    fi
done
echo "tokenizer_oracle: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
