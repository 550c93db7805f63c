#!/usr/bin/env bash
# Side by side with llama.cpp: the logits of every position of one token
# sequence, from llama.cpp and from `spindle logits`, on the same GGUF; prints
# top-1 agreement, the largest and the rms logit difference, the position of
# the first difference above 1e-3 and, for every position where top-1
# differs, whether it is a near-tie: both programs' margins between the two
# candidates below the largest logit difference seen at positions where
# top-1 agrees. See bench/README.md ("llama.cpp side by side") for how
# llama.cpp and its logits dumper are built outside this repository.
#
#   bench/compare_llamacpp.sh MODEL.gguf (IDS | --random N) [--ref | --llama-self] [--precision f32]
#   IDS          comma-separated token ids (the first should be BOS)
#   --random N   BOS + N-1 seeded pseudo-random ids below the vocabulary size
#   --ref        run llama.cpp with an F32 KV cache, flash attention off and no
#                weight repacking (the settings of shared/fixtures/gguf)
#   --llama-self llama.cpp `ref` against llama.cpp `refpack` (the same with
#                weight repacking on): how far llama.cpp moves from itself
#                under another, equally exact kernel order (no Spindle run)
# Environment: SPINDLE (default build/release/spindle), LLAMA_LOGITS (the
# dumper, default /work/llama-tools/llama_logits), THREADS (default 2).
set -euo pipefail
model=${1:?usage: compare_llamacpp.sh MODEL.gguf (IDS | --random N) [--ref | --llama-self] [--precision f32]}
shift
ids=${1:?token ids or --random N}
shift
if [ "$ids" = --random ]; then n=${1:?--random needs N}; shift; ids=; fi
ref=; prec=(); self=
while [ $# -gt 0 ]; do
  case $1 in
    --ref) ref=ref ;;
    --llama-self) ref=ref self=1 ;;
    --precision) prec=(--precision "$2"); shift ;;
    *) echo "compare_llamacpp: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
spindle=${SPINDLE:-build/release/spindle}
dumper=${LLAMA_LOGITS:-/work/llama-tools/llama_logits}
threads=${THREADS:-2}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
vocab=$(python3 - "$model" <<'PY'
import struct, sys
# token_embd rows = vocabulary size, read from the GGUF tensor table
b = open(sys.argv[1], "rb").read(1 << 24)
p = 24; nt, nkv = struct.unpack_from("<QQ", b, 8)
S = {0:1,1:1,2:2,3:2,4:4,5:4,6:4,7:1,10:8,11:8,12:8}
def sk(p): return p + 8 + struct.unpack_from("<Q", b, p)[0]
def sv(p, t):
    if t == 8: return sk(p)
    if t == 9:
        et, n = struct.unpack_from("<IQ", b, p); p += 12
        if et in S: return p + n * S[et]
        for _ in range(n): p = sv(p, et)
        return p
    return p + S[t]
for _ in range(nkv): p = sk(p); t = struct.unpack_from("<I", b, p)[0]; p = sv(p + 4, t)
for _ in range(nt):
    q = sk(p); name = b[p + 8:q].decode(); nd = struct.unpack_from("<I", b, q)[0]
    dims = struct.unpack_from("<%dQ" % nd, b, q + 4); p = q + 4 + 8 * nd + 12
    if name == "token_embd.weight": print(dims[1]); break
PY
)
if [ -z "$ids" ]; then
  ids=$(python3 -c "import random; r=random.Random(42); print(','.join(['1']+[str(r.randrange(3,$vocab)) for _ in range($n-1)]))")
fi
start=$(date +%s.%N)
"$dumper" logits "$model" "$ids" "$tmp/llama.f32" "$threads" $ref >/dev/null 2>"$tmp/llama.err" || { cat "$tmp/llama.err" >&2; exit 1; }
mid=$(date +%s.%N)
if [ -n "$self" ]; then
  "$dumper" logits "$model" "$ids" "$tmp/spindle.f32" "$threads" refpack >/dev/null 2>"$tmp/llama.err" || { cat "$tmp/llama.err" >&2; exit 1; }
else
  "$spindle" logits --model "$model" --tokens "$ids" --out "$tmp/spindle.f32" --threads "$threads" "${prec[@]}"
fi
end=$(date +%s.%N)
python3 - "$tmp/llama.f32" "$tmp/spindle.f32" "$vocab" "$model" "$mid" "$start" "$end" <<'PY'
import struct, sys
a, b, V = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read(), int(sys.argv[3])
n = len(a) // 4
x, y = struct.unpack("<%df" % n, a), struct.unpack("<%df" % n, b)
P = n // V; same = 0; worst = 0.0; amax = 0.0; first = -1; miss = []; agree_err = 0.0; se = 0.0
for t in range(P):
    rx, ry = x[t*V:(t+1)*V], y[t*V:(t+1)*V]
    a, b = rx.index(max(rx)), ry.index(max(ry))
    d = max(abs(u - v) for u, v in zip(rx, ry)); se += sum((u - v) ** 2 for u, v in zip(rx, ry))
    if first < 0 and d > 1e-3: first = t
    worst = max(worst, d); amax = max(amax, max(map(abs, rx)))
    if a == b: same += 1; agree_err = max(agree_err, d)
    else: miss.append((t, rx[a] - rx[b], ry[b] - ry[a]))
print("%s: top-1 agrees on %d/%d positions (%.1f%%), max |logit diff| %.4g, rms %.3g (max |logit| "
      "%.3g), first diff > 1e-3 at position %s; llama.cpp %.1fs, other %.1fs" % (sys.argv[4], same,
      P, 100.0 * same / P, worst, (se / n) ** 0.5, amax, first if first >= 0 else "none",
      float(sys.argv[5]) - float(sys.argv[6]), float(sys.argv[7]) - float(sys.argv[5])))
if miss:
    near = sum(ml < agree_err and ms < agree_err for _, ml, ms in miss)
    print("  top-1 differs at %d positions; %d of them are near-ties (both margins < %.3g, the "
          "largest logit difference where top-1 agrees): %s" % (len(miss), near, agree_err,
          " ".join("%d(%.3f/%.3f)" % m for m in miss)))
PY
