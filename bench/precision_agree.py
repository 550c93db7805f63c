#!/usr/bin/env python3
"""How far default precision is from --precision f32 on one token sequence.

    bench/precision_agree.py SPINDLE MODEL IDS [--label NAME]

Runs `spindle logits` twice on the same ids (IDS: "1,2,3" or @file with
one comma-separated list), --precision f32 and the default, and prints
one row: top-1 agreement over all positions, mean and max KL(f32 || fast)
in nats, mean and max |logit error| / logit range (range = max - min of the
f32 logits at that position), and for every position whose top-1 differs
the f32 top-2 margin / range (a flip at a margin of 1e-3 is a near-tie;
one at 0.1 would be a bug). SPINDLE_ISA selects the kernels as usual.
Python standard library only; the temporary logits go to build/.
"""
import argparse
import array
import math
import os
import subprocess
import sys
import tempfile


def logits(spindle, model, ids, precision, out):
    cmd = [spindle, "logits", "--model", model, "--tokens", ids, "--out", out]
    if precision:
        cmd += ["--precision", precision]
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
    a = array.array("f")
    with open(out, "rb") as f:
        a.frombytes(f.read())
    return a


def log_softmax(row):
    m = max(row)
    s = math.log(sum(math.exp(v - m) for v in row)) + m
    return [v - s for v in row]


def compare(ref, got, n_pos):
    V = len(ref) // n_pos
    r = dict(same=0, kl=[], err=[], flips=[])
    for p in range(n_pos):
        a, b = ref[p * V:(p + 1) * V], got[p * V:(p + 1) * V]
        rng = max(a) - min(a) or 1.0
        ia = max(range(V), key=a.__getitem__)
        ib = max(range(V), key=b.__getitem__)
        top2 = sorted(a, reverse=True)[:2]
        if ia == ib:
            r["same"] += 1
        else:
            r["flips"].append((top2[0] - top2[1]) / rng)
        la, lb = log_softmax(a), log_softmax(b)
        r["kl"].append(sum(math.exp(x) * (x - y) for x, y in zip(la, lb)))
        r["err"].append(max(abs(x - y) for x, y in zip(a, b)) / rng)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("spindle")
    ap.add_argument("model")
    ap.add_argument("ids")
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    ids = open(a.ids[1:]).read().strip() if a.ids.startswith("@") else a.ids
    n = len(ids.split(","))
    os.makedirs("build", exist_ok=True)
    with tempfile.TemporaryDirectory(dir="build") as d:
        ref = logits(a.spindle, a.model, ids, "f32", os.path.join(d, "f32"))
        got = logits(a.spindle, a.model, ids, None, os.path.join(d, "fast"))
    r = compare(ref, got, n)
    flips = " ".join(f"{m:.1e}" for m in sorted(r["flips"])) or "-"
    print(f"| {a.label or os.path.basename(a.model.rstrip('/')):<22} | "
          f"{os.environ.get('SPINDLE_ISA', 'best'):<10} | {r['same']}/{n} | "
          f"{sum(r['kl']) / n:.1e} | {max(r['kl']):.1e} | "
          f"{sum(r['err']) / n:.1e} | {max(r['err']):.1e} | {flips} |")


if __name__ == "__main__":
    sys.exit(main())
