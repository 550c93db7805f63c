#!/usr/bin/env bash
# Every corruption of a model directory gives a one-line error naming the
# file and the tensor/key/offset, and a non-zero exit, never a crash.
# usage: test_bad_models.sh SPINDLE SHARED_DIR BUILD_DIR
set -u
bin=$1 shared=$2 build=$3
src=$shared/fixtures/llama
work=$build/test-bad-models
rm -rf "$work" && mkdir -p "$work"
pass=0 fail=0

# case | fixture | expected substring (the thing the message must name)
cases=(
  "truncated|llama|model.safetensors"
  "header_past_eof|llama|header"
  "bad_json|llama|line"
  "unknown_dtype|llama|Q99"
  "span_out_of_bounds|llama|model."
  "span_overlap|llama|overlap"
  "tensor_missing|llama|model.norm.weight"
  "shape_vs_config|llama|mlp"
  "config_key_missing|llama|num_hidden_layers"
  "config_wrong_type|llama|hidden_size"
  "config_not_json|llama|config.json"
  "expert_missing|qwen3_moe|experts.1.up_proj"
  "router_misshapen|qwen3_moe|mlp.gate.weight"
  "unknown_layer_type|gemma3|chunked_attention"
  "per_layer_config_mismatch|gemma4_dense|layers.2.self_attn"
)
for entry in "${cases[@]}"; do
  IFS='|' read -r name fixture want <<<"$entry"
  dir=$work/$name
  python3 "$(dirname "$0")/corrupt_model.py" "$shared/fixtures/$fixture" "$dir" "$name" || { echo "FAIL $name: setup"; fail=$((fail+1)); continue; }
  out=$("$bin" generate --model "$dir" --tokens 1,2,3 -n 2 2>&1 >/dev/null); rc=$?
  out=$(printf '%s\n' "$out" | grep -Ev '^[0-9:.]+ info ') # the start-up line is no error
  lines=$(printf '%s\n' "$out" | grep -c .)
  if [ $rc -ne 0 ] && [ $rc -lt 128 ] && [ "$lines" -eq 1 ] && [[ $out == *"$want"* ]]; then
    echo "ok   $name: $out"; pass=$((pass+1))
  else
    echo "FAIL $name (exit $rc, $lines lines, want '$want'): $out"; fail=$((fail+1))
  fi
done

# usage errors: exit 2 with a message, for both commands
usage_cases=(
  "logits --model $src --tokens 1,2"
  "logits --model $src --tokens 1,x,3 --out $work/x.f32"
  "generate --model $src --tokens 1,2 -n -4"
  "generate --model $src --tokens 1,2 --bogus"
  "generate --model $src --tokens"
  "generate --tokens 1,2"
  "logits --model $src --tokens 1,2 --out $work/y.f32 --precision f16"
)
for c in "${usage_cases[@]}"; do
  out=$("$bin" $c 2>&1 >/dev/null); rc=$?
  if [ $rc -eq 2 ] && [ -n "$out" ]; then echo "ok   usage: $c"; pass=$((pass+1))
  else echo "FAIL usage (exit $rc): $c: $out"; fail=$((fail+1)); fi
done

# a token id outside the vocabulary is an error, not a crash
out=$("$bin" generate --model "$src" --tokens 1,99999 -n 1 2>&1 >/dev/null); rc=$?
if [ $rc -eq 1 ] && [[ $out == *99999* ]]; then echo "ok   token out of vocab"; pass=$((pass+1))
else echo "FAIL token out of vocab (exit $rc): $out"; fail=$((fail+1)); fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
