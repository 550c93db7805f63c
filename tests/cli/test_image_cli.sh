#!/usr/bin/env bash
# The image CLI contract (issue 20) on both vision fixtures, checked against
# transformers' references: `spindle image --pixels` writes exactly the
# processor's tensor, `--pixels-in ... --features` the features (1e-3 of
# their range), `spindle logits --image` every position's logits (1e-3 x
# max(1, max|ref|)), `spindle generate --tokens ... --image` the greedy ids;
# mismatched image counts and bad files fail with a message and exit 1.
# usage: test_image_cli.sh SPINDLE SHARED_DIR BUILD_DIR
set -u
bin=$1 shared=$2 build=$3
images=$shared/fixtures/vision/images
out=$build/test_image_cli
mkdir -p "$out"
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }

# max |a - b| <= tol * max(floor, max |b|) over two float32 files
close() {
  python3 - "$1" "$2" "$3" "$4" <<'EOF'
import array, sys
a, b = array.array('f'), array.array('f')
a.frombytes(open(sys.argv[1], 'rb').read()); b.frombytes(open(sys.argv[2], 'rb').read())
tol, floor = float(sys.argv[3]), float(sys.argv[4])
if len(a) != len(b): sys.exit(f"{len(a)} values vs {len(b)}")
d = max(abs(x - y) for x, y in zip(a, b)); m = max(abs(y) for y in b)
print(f"  max |diff| {d:.3g}, max |ref| {m:.3g}")
sys.exit(0 if d <= tol * max(floor, m) else 1)
EOF
}
ref() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"; }

for dir in "$shared/fixtures/vision/gemma3_vision" "$build/fixtures/vision/gemma4_vision"; do
  name=$(basename "$dir")
  r=$dir/reference.json
  for img in scene photo alpha; do
    file=$(ls "$images/$img".*)
    "$bin" image --model "$dir" --image "$file" --pixels "$out/$name-$img.px" >/dev/null
    if cmp -s "$out/$name-$img.px" "$dir/proc_${img}_pixel_values.f32"; then ok "$name $img: pixels identical"
    else bad "$name $img: pixels differ"; fi
    pos=()
    [ -f "$dir/proc_${img}_image_position_ids.i32" ] && pos=(--positions-in "$dir/proc_${img}_image_position_ids.i32")
    "$bin" image --model "$dir" --pixels-in "$dir/proc_${img}_pixel_values.f32" "${pos[@]}" \
      --features "$out/$name-$img.ft" --precision f32 >/dev/null
    if close "$out/$name-$img.ft" "$dir/features_$img.f32" 1e-3 0; then ok "$name $img: features"
    else bad "$name $img: features"; fi
  done
  for p in 0 1; do
    ids=$(ref "$r" "','.join(map(str, r['prompts'][$p]['prompt_ids']))")
    want=$(ref "$r" "r['prompts'][$p]['greedy_ids']")
    imgs=()
    for f in $(ref "$r" "' '.join(r['prompts'][$p]['images'])"); do imgs+=(--image "$images/$f"); done
    "$bin" logits --model "$dir" --tokens "$ids" "${imgs[@]}" --out "$out/$name-$p.logits" --precision f32
    if close "$out/$name-$p.logits" "$dir/logits_prompt$p.f32" 1e-3 1; then ok "$name prompt $p: logits"
    else bad "$name prompt $p: logits"; fi
    got=$("$bin" generate --model "$dir" --tokens "$ids" "${imgs[@]}" -n 16 --precision f32)
    if [ "$got" == "$want" ]; then ok "$name prompt $p: greedy ids"
    else bad "$name prompt $p: greedy $got, want $want"; fi
  done
  # one image for a prompt with two runs: exit 1 naming both counts
  ids=$(ref "$r" "','.join(map(str, r['prompts'][1]['prompt_ids']))")
  msg=$("$bin" logits --model "$dir" --tokens "$ids" --image "$images/scene.png" --out "$out/x" 2>&1)
  rc=$?
  if [ $rc -eq 1 ] && [[ "$msg" == *"2 run(s)"*"1 image(s)"* ]]; then ok "$name: image count mismatch"
  else bad "$name: image count mismatch gave rc=$rc: $msg"; fi
  printf 'not an image' >"$out/bad.png"
  msg=$("$bin" image --model "$dir" --image "$out/bad.png" 2>&1)
  rc=$?
  if [ $rc -eq 1 ] && [[ "$msg" == *"bad.png"*"supported"* ]]; then ok "$name: bad image file"
  else bad "$name: bad image file gave rc=$rc: $msg"; fi
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
