#!/usr/bin/env bash
# Issue 4 acceptance: `spindle generate --prompt TEXT -n 64` on stories260K.gguf
# prints exactly the continuation llama.cpp printed, for every reference prompt.
# usage: test_generate_text.sh SPINDLE SHARED_DIR BUILD_DIR
set -u
bin=$1 shared=$2
ref=$shared/models/stories260K.llamacpp-greedy.json
model=$shared/models/stories260K.gguf
pass=0 fail=0
n=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))))" "$ref")
for ((i = 0; i < n; i++)); do
  prompt=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[int(sys.argv[2])]['prompt'])" "$ref" $i)
  want=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[int(sys.argv[2])]['generated_text'])" "$ref" $i)
  for prec in fast f32; do
    got=$("$bin" generate --model "$model" --prompt "$prompt" -n 64 --precision $prec)
    if [ "$got" == "$want" ]; then echo "ok   [$prec] $prompt"; pass=$((pass+1))
    else echo "FAIL [$prec] $prompt"; echo "  want: $want"; echo "  got:  $got"; fail=$((fail+1)); fi
  done
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
