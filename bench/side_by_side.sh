#!/usr/bin/env bash
# Spindle vs llama.cpp on the same GGUF files, one program after the other,
# ROUNDS times per file (alternating, so a noisy phase of the machine hits
# both), then the median of every sample of each program.
#
#   bench/side_by_side.sh SPINDLE LLAMA_BENCH OUT_DIR MODEL.gguf...
# env: THREADS (2), PP (512), TG (128), REPS (2 per invocation), ROUNDS (2)
#
# Both programs read the weights into process memory (llama-bench -lm none;
# Spindle's default) and both skip long warm-ups: llama-bench --no-warmup,
# Spindle warms up with 64 tokens / 8 steps. Writes OUT_DIR/raw.jsonl (one
# line per sample) and prints the table (python3 summarises).
set -euo pipefail
spindle=$1 llama=$2 out=$3
shift 3
threads=${THREADS:-2} pp=${PP:-512} tg=${TG:-128} reps=${REPS:-2} rounds=${ROUNDS:-2}
mkdir -p "$out"
raw=$out/raw.jsonl
: >"$raw"

run_spindle() { # model round
    "$spindle" bench --model "$1" -p "$pp" -n "$tg" -r "$reps" --threads "$threads" --json --membw |
        sed "s/^{/{\"prog\": \"spindle\", \"round\": $2, /" >>"$raw"
}

run_llama() { # model round
    "$llama" -m "$1" -p "$pp" -n "$tg" -r "$reps" -t "$threads" -lm none --no-warmup -o jsonl |
        sed "s/^{/{\"prog\": \"llama.cpp\", \"round\": $2, \"model_path\": \"$(basename "$1")\", /" >>"$raw"
}

for round in $(seq 1 "$rounds"); do
    for m in "$@"; do
        echo "round $round: $(basename "$m")" >&2
        if [ $((round % 2)) -eq 1 ]; then
            run_spindle "$m" "$round"
            run_llama "$m" "$round"
        else
            run_llama "$m" "$round"
            run_spindle "$m" "$round"
        fi
    done
done

python3 - "$raw" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
res = {}  # (model, prog, test) -> samples of tokens/s
bw, bpt = {}, {}
for r in rows:
    if r["prog"] == "spindle":
        m = r["model"]
        res.setdefault((m, "spindle", "pp"), []).append(r["pp_tps"])
        res.setdefault((m, "spindle", "tg"), []).append(r["tg_tps"])
        bw.setdefault(m, []).append(r["membw_gbs"])
        bpt[m] = r["bytes_per_token"]
    else:
        m = r["model_path"]
        test = "pp" if r["n_prompt"] > 0 else "tg"
        res.setdefault((m, "llama.cpp", test), []).extend(r["samples_ts"])
med = lambda v: statistics.median(v) if v else float("nan")
print("| model | test | llama.cpp t/s | Spindle t/s | ratio | decode GB/s llama.cpp / Spindle | % of probe llama.cpp / Spindle |")
print("|---|---|---:|---:|---:|---:|---:|")
for m in sorted(bpt):
    for test in ("pp", "tg"):
        l, s = med(res.get((m, "llama.cpp", test), [])), med(res.get((m, "spindle", test), []))
        extra = "| | |"
        if test == "tg":
            gl, gs, b = l * bpt[m] / 1e9, s * bpt[m] / 1e9, med(bw[m])
            extra = "| %.1f / %.1f | %.0f%% / %.0f%% |" % (gl, gs, 100 * gl / b, 100 * gs / b)
        name = {"pp": "pp512", "tg": "tg128"}[test]
        print("| %s | %s | %.2f | %.2f | %.2fx %s" % (m, name, l, s, s / l, extra))
print("\nprobe (sequential read, same threads): median %.1f GB/s over all runs" %
      med([x for v in bw.values() for x in v]))
EOF
