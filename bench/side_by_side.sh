#!/usr/bin/env bash
# Spindle vs llama.cpp on the same GGUF files, one program after the other,
# ROUNDS times per file (alternating, so a noisy phase of the machine hits
# both), then the median of every sample of each program.
#
#   bench/side_by_side.sh SPINDLE LLAMA_BENCH OUT_DIR MODEL.gguf...
# env: THREADS (2), PP (512), TG (128), REPS (2 per invocation), ROUNDS (2),
#      ISAS (kernel levels Spindle runs at, each with --isa, e.g.
#      "avx512bf16 avx2": one table per level; default: the CPU's best),
#      BASE (a second Spindle binary, e.g. an earlier commit's, run the
#      same way beside it: "base" columns)
#
# Both programs read the weights into process memory (llama-bench -lm none;
# Spindle's default) and both skip long warm-ups: llama-bench --no-warmup,
# Spindle warms up with 64 tokens / 8 steps. Writes OUT_DIR/raw.jsonl (one
# line per sample) and prints the table (python3 summarises).
set -euo pipefail
spindle=$1 llama=$2 out=$3
shift 3
threads=${THREADS:-2} pp=${PP:-512} tg=${TG:-128} reps=${REPS:-2} rounds=${ROUNDS:-2}
isas=${ISAS:-} base=${BASE:-}
mkdir -p "$out"
raw=$out/raw.jsonl
: >"$raw"

run_one() { # binary label model round [isa]
    "$1" bench --model "$3" -p "$pp" -n "$tg" -r "$reps" --threads "$threads" --json --membw \
        ${5:+--isa "$5"} | sed "s/^{/{\"prog\": \"$2\", \"round\": $4, /" >>"$raw"
}

run_spindle() { # model round: every level asked for, this binary and BASE
    for isa in ${isas:-""}; do
        run_one "$spindle" spindle "$1" "$2" "$isa"
        [ -z "$base" ] || run_one "$base" base "$1" "$2" "$isa"
    done
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

python3 - "$raw" "$pp" "$tg" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
res = {}  # (model, prog, isa, test) -> samples of tokens/s; llama.cpp: isa ""
bw, bpt, isas, progs = {}, {}, [], set()
for r in rows:
    if r["prog"] in ("spindle", "base"):
        m, i = r["model"], r["isa"]
        isas += [i] if i not in isas else []
        progs.add(r["prog"])
        res.setdefault((m, r["prog"], i, "pp"), []).append(r["pp_tps"])
        res.setdefault((m, r["prog"], i, "tg"), []).append(r["tg_tps"])
        bw.setdefault(m, []).append(r["membw_gbs"])
        bpt[m] = r["bytes_per_token"]
    else:
        m = r["model_path"]
        test = "pp" if r["n_prompt"] > 0 else "tg"
        res.setdefault((m, "llama.cpp", "", test), []).extend(r["samples_ts"])
med = lambda v: statistics.median(v) if v else float("nan")
names = {"pp": "pp" + sys.argv[2], "tg": "tg" + sys.argv[3]}
for i in isas:
    has_base = "base" in progs
    print("\nSpindle kernels: %s" % i)
    print("| model | test | llama.cpp t/s | Spindle t/s | ratio |%s decode GB/s llama.cpp / Spindle | %% of probe llama.cpp / Spindle |"
          % (" base t/s | Spindle / base |" if has_base else ""))
    print("|---|---|---:|---:|---:|%s---:|---:|" % ("---:|---:|" if has_base else ""))
    for m in sorted(bpt):
        for test in ("pp", "tg"):
            l = med(res.get((m, "llama.cpp", "", test), []))
            s = med(res.get((m, "spindle", i, test), []))
            b = med(res.get((m, "base", i, test), []))
            extra = " | |"
            if test == "tg":
                gl, gs, p = l * bpt[m] / 1e9, s * bpt[m] / 1e9, med(bw[m])
                extra = " %.1f / %.1f | %.0f%% / %.0f%% |" % (gl, gs, 100 * gl / p, 100 * gs / p)
            cols = " %.2f | %.2fx |" % (b, s / b) if has_base else ""
            print("| %s | %s | %.2f | %.2f | %.2fx |%s%s" % (m, names[test], l, s, s / l, cols, extra))
print("\nprobe (sequential read, same threads): median %.1f GB/s over all runs" %
      med([x for v in bw.values() for x in v]))
EOF
