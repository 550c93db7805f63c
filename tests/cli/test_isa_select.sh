#!/usr/bin/env bash
# Issue 16: the kernel level is chosen at run time and can be forced.
#  - no SPINDLE_ISA: the start-up line names the best level the CPU has;
#  - SPINDLE_ISA=L and --isa L, for every level the CPU has: that level runs
#    (the line says so) and the f32 greedy ids of stories260K are llama.cpp's;
#  - a level above the CPU's: clamped to the CPU's, with a warning naming
#    the missing features;
#  - a name that is no level: exit 2 and a message, from both spellings.
# usage: test_isa_select.sh SPINDLE SHARED_DIR BUILD_DIR
set -u
bin=$1 shared=$2 build=$3
model=$shared/models/stories260K.gguf
log=$build/test_isa_select.log
levels=(scalar avx2 avx512 avx512bf16)
pass=0 fail=0
ok() { echo "ok   $*"; pass=$((pass + 1)); }
bad() { echo "FAIL $*"; sed 's/^/  /' "$log"; fail=$((fail + 1)); }
want=$(python3 -c "import json,sys; e=json.load(open(sys.argv[1]))[0]; print(','.join(map(str,e['prompt_token_ids'])), '[' + ', '.join(map(str,e['generated_token_ids'][:16])) + ']')" \
  "$shared/models/stories260K.llamacpp-greedy.json")
ids=${want%% *} want=${want#* }
gen() { # SPINDLE_ISA ("": unset) [FLAG...]: prints the ids, the log goes to $log
  local isa=$1
  shift
  if [ -n "$isa" ]; then export SPINDLE_ISA=$isa; else unset SPINDLE_ISA; fi
  "$bin" generate --model "$model" --tokens "$ids" -n 16 --precision f32 "$@" 2>"$log"
}

got=$(gen "")
best=$(sed -n 's/.*compute kernels: \([a-z0-9]*\) (the best this CPU has.*/\1/p' "$log")
[ -n "$best" ] && [ "$got" = "$want" ] && ok "default: $best, the best this CPU has" || bad "default level"
above=0
for l in "${levels[@]}"; do
  for how in env flag; do
    if [ $how = env ]; then got=$(gen $l); else got=$(gen "" --isa $l); fi
    if [ $above = 0 ]; then
      grep -q "compute kernels: $l (SPINDLE_ISA=$l" "$log" && [ "$got" = "$want" ] &&
        ok "$how $l: runs $l, llama.cpp's ids" || bad "$how $l"
    else
      grep -q "compute kernels: $best (SPINDLE_ISA=$l asked for more than this CPU has: it lacks" \
        "$log" && [ "$got" = "$want" ] && ok "$how $l: clamped to $best" || bad "$how $l clamp"
    fi
  done
  [ "$l" = "$best" ] && above=1
done
SPINDLE_ISA=avx9 "$bin" generate --model "$model" --tokens 1 -n 1 >/dev/null 2>"$log"
[ $? -eq 2 ] && grep -q "SPINDLE_ISA must be scalar, avx2, avx512 or avx512bf16, got 'avx9'" "$log" &&
  ok "SPINDLE_ISA=avx9: exit 2" || bad "SPINDLE_ISA=avx9"
env -u SPINDLE_ISA "$bin" serve --model "$model" --isa avx9 >/dev/null 2>"$log"
[ $? -eq 2 ] && grep -q -- "--isa must be scalar, avx2, avx512 or avx512bf16, got 'avx9'" "$log" &&
  ok "serve --isa avx9: exit 2" || bad "serve --isa avx9"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
