#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for a
# bounded time on a copy of its seed corpus.
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#   tests/fuzz/run.sh replay    (seeds + regressions under ASan/UBSan, no fuzzing)
#   tests/fuzz/run.sh triage [TARGET...]  (what each stored crash triggers now)
#     SECONDS_PER_TARGET  default 30; TARGET: safetensors safetensors_sharded
#                         gguf gguf_vocab json_config tokenizer_load tokenize
#                         detok template toolcall request
#                         (default: every tests/fuzz/fuzz_*.c)
#   environment:
#     FUZZ_OUT=build/fuzz  build + working directory (corpus copies, logs,
#                          crash files); nothing is written into the repo
#     FUZZ_JOBS=2          make -j for the build
#     FUZZ_PARALLEL=1      targets fuzzed at the same time (one process
#                          each; `make fuzz-ci` uses one per core)
#     FUZZ_WORKAROUNDS=1   step around the known bugs listed in
#                          fuzz_common.h (campaigns only; CI leaves it unset)
#     FUZZ_ARGS="..."      extra libFuzzer flags (e.g. -jobs=4 -workers=4)
#
# Prints one line per target (execs, corpus size, seconds, result) and exits non-zero
# if any target failed to build, crashed, leaked, hung or ran out of memory;
# the reproducer stays in FUZZ_OUT/artifacts/<target>/. Replay one with
#   FUZZ_OUT/fuzz_<target> FUZZ_OUT/artifacts/<target>/crash-...
# and store it in tests/fuzz/regressions/<target>/ so
# tests/unit/test_fuzz_regressions.c replays it in the normal test suite.
set -uo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

# One line naming what an input does: the first sanitizer / invariant /
# libFuzzer error and the first frame inside src/.
triage_one() { # BIN INPUT
    timeout 60 "$1" "$2" 2>&1 | awk '
        /fuzz invariant failed|runtime error|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)/ && !s { s = $0 }
        /#[0-9]+ .* in .*\/src\// && !f { f = $0 }
        END {
            sub(/^.* in /, "", f); sub(/^.*\/src\//, "src/", f)
            sub(/==[0-9]+==/, "", s); sub(/ on address 0x[0-9a-f]+ at pc.*/, "", s)
            print (s ? s : "no error now") (f ? " @ " f : "") }'
}

# tests/fuzz/run.sh triage [TARGET...]: buckets every stored artifact and
# reproducer by what it triggers now.
if [[ "${1:-}" == triage ]]; then
    shift
    out="${FUZZ_OUT:-build/fuzz}"
    export SP_TOKENIZERS_DIR="${SP_TOKENIZERS_DIR:-$root/build/tokenizers}"
    # triage against the sources as they are, without campaign workarounds
    make -k -f tests/fuzz/fuzz.mk -j"${FUZZ_JOBS:-2}" OUT="$out" FUZZ_CFLAGS= >"$out/logs/build.log" 2>&1
    ts=("$@")
    [[ ${#ts[@]} -eq 0 ]] && for f in tests/fuzz/fuzz_*.c; do t="${f#tests/fuzz/fuzz_}"; ts+=("${t%.c}"); done
    for t in "${ts[@]}"; do
        for d in "$out/artifacts/$t" "tests/fuzz/regressions/$t"; do
            [[ -d "$d" && -n "$(ls "$d")" ]] || continue
            echo "== $d"
            for a in "$d"/*; do triage_one "$out/fuzz_$t" "$a"; done | sort | uniq -c | sort -rn
        done
    done
    exit 0
fi

# tests/fuzz/run.sh replay: every seed and stored reproducer through the
# targets' entry points under ASan + UBSan + LSan (no fuzzing); non-zero
# while any reproducer still fails.
if [[ "${1:-}" == replay ]]; then
    out="${FUZZ_OUT:-build/fuzz}"
    mkdir -p "$out/logs"
    export SP_TOKENIZERS_DIR="${SP_TOKENIZERS_DIR:-$root/build/tokenizers}"
    bash scripts/fetch-tokenizers.sh "$SP_TOKENIZERS_DIR" || exit 2
    make -k -f tests/fuzz/fuzz.mk -j"${FUZZ_JOBS:-2}" OUT="$out" "$out/replay" \
        >"$out/logs/build.log" 2>&1 || {
        grep -E "error:|\*\*\*" "$out/logs/build.log" | head -20 >&2
        exit 2
    }
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 "$out/replay"
    exit $?
fi
secs="${1:-30}"
[[ $# -gt 0 ]] && shift
out="${FUZZ_OUT:-build/fuzz}"
mkdir -p "$out/work"
out="$(cd "$out" && pwd)" # absolute: the fuzzers run inside it
jobs="${FUZZ_JOBS:-2}"
if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    # the targets that load the real tokenizers first (seconds to start under
    # ASan): with FUZZ_PARALLEL > 1 the others run beside them
    targets=(request tokenize detok)
    for f in tests/fuzz/fuzz_*.c; do
        t="${f#tests/fuzz/fuzz_}"
        t="${t%.c}"
        case "$t" in request | tokenize | detok) ;; *) targets+=("$t") ;; esac
    done
fi
for t in "${targets[@]}"; do
    if [[ ! -f "tests/fuzz/fuzz_$t.c" ]]; then
        echo "run.sh: no target '$t' (tests/fuzz/fuzz_$t.c)" >&2
        exit 2
    fi
done

if ! command -v clang >/dev/null; then
    echo "run.sh: clang is required (libFuzzer ships with it)" >&2
    exit 2
fi
# Debian ships libFuzzer and the sanitizer runtimes in libclang-rt-14-dev,
# which clang only recommends: say so instead of failing at the first link.
probe_dir="$(mktemp -d)"
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return (int)(n && d[0]); }\n' \
    >"$probe_dir/p.c"
if ! clang -fsanitize=fuzzer,address,undefined "$probe_dir/p.c" -o "$probe_dir/p" 2>"$probe_dir/err"; then
    head -5 "$probe_dir/err" >&2
    echo "run.sh: clang cannot link -fsanitize=fuzzer (install libclang-rt-14-dev:" \
        "scripts/install-deps.sh)" >&2
    rm -rf "$probe_dir"
    exit 2
fi
rm -rf "$probe_dir"

# The tokenizer-based targets load real tokenizers (fetched once, cached).
export SP_TOKENIZERS_DIR="${SP_TOKENIZERS_DIR:-$root/build/tokenizers}"
for t in "${targets[@]}"; do
    case "$t" in tokenize | detok | request)
        bash scripts/fetch-tokenizers.sh "$SP_TOKENIZERS_DIR" || exit 2
        break ;;
    esac
done

fuzz_cflags=""
[[ "${FUZZ_WORKAROUNDS:-0}" == 1 ]] &&
    fuzz_cflags="-DFUZZ_WORKAROUND_EMPTY_FLUSH -DFUZZ_WORKAROUND_DUP_VOCAB_ID"

mkdir -p "$out/logs"
echo "run.sh: building into $out (log: $out/logs/build.log)" >&2
bins=()
for t in "${targets[@]}"; do bins+=("$out/fuzz_$t"); done
rm -f "${bins[@]}" # relinked (objects are kept): a stale binary never runs
t_build=$SECONDS
# -k: a layer that does not compile only blocks the targets that need it
make -k -f tests/fuzz/fuzz.mk -j"$jobs" OUT="$out" FUZZ_CFLAGS="$fuzz_cflags" "${bins[@]}" \
    >"$out/logs/build.log" 2>&1 || grep -E "error:|\*\*\*" "$out/logs/build.log" | head -20 >&2
t_build=$((SECONDS - t_build))

export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=0:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

# Fuzzes one target; writes its table row to $out/logs/$t.row. Runs in the
# background when FUZZ_PARALLEL > 1, so it only touches its own files.
fuzz_one() { # TARGET
    local t="$1" bin="$out/fuzz_$1" row="$out/logs/$1.row"
    if [[ ! -x "$bin" ]]; then
        printf '%-20s %12s %8s %6s  %s\n' "$t" - - - "FAILED: did not build (see $out/logs/build.log)" >"$row"
        return
    fi
    local corpus="$out/corpus/$t" arts="$out/artifacts/$t" log="$out/logs/$t.log"
    mkdir -p "$corpus" "$arts"
    # the seeds join whatever earlier runs found (never written back)
    cp -n "tests/fuzz/corpus/$t/"* "$corpus/" 2>/dev/null
    local dict=()
    [[ -f "tests/fuzz/dict/$t.dict" ]] && dict=("-dict=$root/tests/fuzz/dict/$t.dict")
    local before t0 rc
    before="$(ls "$arts" | wc -l)"
    echo "run.sh: fuzzing $t for ${secs}s (log: $log)" >&2
    t0=$SECONDS
    # the outer timeout only bounds a target that stops honouring
    # -max_total_time (a load that never ends); it counts as a failure
    # run from $out/work: whatever libFuzzer writes without the artifact
    # prefix (fuzz-N.log of -jobs, ...) stays under build/, never in the repo
    # shellcheck disable=SC2086
    (cd "$out/work" && timeout -k 10 $((secs * 2 + 120)) "$bin" -max_total_time="$secs" \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$arts/" \
        "${dict[@]}" ${FUZZ_ARGS:-} "$corpus" >"$log" 2>&1)
    rc=$?
    local execs units result="ok" wall=$((SECONDS - t0))
    execs="$(grep -ho 'stat::number_of_executed_units: *[0-9]*' "$log" |
        awk '{s += $2} END {print s + 0}')"
    if [[ "$execs" == 0 ]]; then # -fork mode prints no final stats
        execs="$(grep -oE '^#[0-9]+' "$log" | tr -d '#' | sort -n | tail -1)"
    fi
    units="$(ls "$corpus" | wc -l)"
    # with -fork=N -ignore_crashes=1 the exit status hides crashes: new
    # artifacts count as a failure too
    if [[ $rc -ne 0 || "$(ls "$arts" | wc -l)" -gt "$before" ]]; then
        local art summary nnew
        art="$(ls -t "$arts" | head -1)"
        summary="$(triage_one "$bin" "$arts/$art" | cut -c1-160)"
        nnew=$(($(ls "$arts" | wc -l) - before))
        if [[ $nnew -gt 0 && -n "$art" ]]; then
            result="FAILED rc=$rc, $nnew new artifact(s), latest $arts/$art: $summary"
        else
            result="FAILED rc=$rc (no artifact; see $log): $summary"
        fi
    fi
    printf '%-20s %12s %8s %5ss  %s\n' "$t" "${execs:-0}" "$units" "$wall" "$result" >"$row"
}

# FUZZ_PARALLEL targets at a time (CI: one per core); each is one process.
par="${FUZZ_PARALLEL:-1}"
t_all=$SECONDS
for t in "${targets[@]}"; do
    rm -f "$out/logs/$t.row"
    if [[ "$par" -le 1 ]]; then
        fuzz_one "$t"
        continue
    fi
    while [[ "$(jobs -rp | wc -l)" -ge "$par" ]]; do wait -n; done
    fuzz_one "$t" &
done
wait

declare -a rows
failed=0
for t in "${targets[@]}"; do
    r="$(cat "$out/logs/$t.row" 2>/dev/null)"
    [[ -z "$r" ]] && r="$(printf '%-20s %12s %8s %6s  %s' "$t" - - - "FAILED: no result")"
    [[ "$r" == *FAILED* ]] && failed=1
    rows+=("$r")
done

printf '\n%-20s %12s %8s %6s  %s\n' target execs corpus time result
for r in "${rows[@]}"; do echo "$r"; done
echo "run.sh: ${#targets[@]} targets, ${secs} s each, $par at a time: $((SECONDS - t_all)) s" \
    "fuzzing (+ $t_build s building)"
exit $failed
