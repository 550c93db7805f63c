#!/usr/bin/env bash
# Tokenizer throughput: ~10 MB of mixed English / C code / CJK text encoded
# with the Llama 3 tokenizer by Spindle (one thread) and by the Node
# baseline (@lenml/tokenizers, a transformers.js fork).
#   usage: bench/bench_tokenizer.sh [SPINDLE] [TOKENIZER_DIR]
# Needs scripts/fetch-tokenizers.sh to have run; installs the Node package
# into build/node-oracle when missing.
set -euo pipefail

src="$(cd "$(dirname "$0")/.." && pwd)"
spindle="${1:-$src/build/release/spindle}"
tokdir="${2:-$src/build/tokenizers/llama3_1}"
text="$src/build/bench-tokenizer.txt"
modules="${SP_NODE_MODULES:-$src/build/node-oracle}"

make_text() {
    # English prose (licenses, docs), C code (system headers), and CJK
    # sentences assembled from common characters, interleaved by blocks.
    local eng code cjk
    eng="$(mktemp)" code="$(mktemp)" cjk="$(mktemp)"
    cat /usr/share/common-licenses/* >"$eng" 2>/dev/null || true
    find /usr/share/doc -name 'copyright' -size -64k 2>/dev/null | head -400 | xargs cat >>"$eng" 2>/dev/null || true
    find /usr/include -name '*.h' -size -256k 2>/dev/null | sort | head -600 | xargs cat >"$code" 2>/dev/null || true
    node -e '
      const chars = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理府研质";
      let s = 1, out = [];
      const r = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
      for (let i = 0; i < 60000; i++) {
        let w = "";
        const n = 8 + Math.floor(r() * 30);
        for (let k = 0; k < n; k++) w += chars[Math.floor(r() * chars.length)];
        out.push(w + "。，！？、"[Math.floor(r() * 5)] + (r() < 0.2 ? "\n" : ""));
      }
      process.stdout.write(out.join(""));' >"$cjk"
    python3 - "$eng" "$code" "$cjk" "$text" <<'PY'
import sys
eng, code, cjk = (open(p, 'rb').read() for p in sys.argv[1:4])
out = sys.argv[4]
target = 10_000_000
parts = [(eng, 0.45), (code, 0.35), (cjk, 0.20)]
blocks, pos = [], [0, 0, 0]
total = 0
while total < target:
    for i, (data, share) in enumerate(parts):
        n = int(64_000 * share)
        chunk = data[pos[i]:pos[i] + n] if data else b""
        if len(chunk) < n:
            pos[i] = 0
            chunk = data[:n]
        pos[i] += n
        blocks.append(chunk)
        total += len(chunk)
text = b"".join(blocks)[:target].decode("utf-8", "ignore")
open(out, "w", encoding="utf-8").write(text)
PY
    rm -f "$eng" "$code" "$cjk"
}

[[ -s "$tokdir/tokenizer.json" ]] || { echo "run scripts/fetch-tokenizers.sh first" >&2; exit 1; }
[[ -s "$text" ]] || make_text
if [[ ! -d "$modules/node_modules/@lenml/tokenizers" ]]; then
    mkdir -p "$modules"
    [[ -f "$modules/package.json" ]] || echo '{"private": true}' >"$modules/package.json"
    (cd "$modules" && npm install --silent --no-audit --no-fund @lenml/tokenizers@3.7.2)
fi
echo "text: $text ($(wc -c <"$text") bytes)"
echo "spindle: $("$spindle" tokenize --model "$tokdir" --bench "$text")"
echo "node:    $(SP_NODE_MODULES="$modules" node "$src/bench/tokenizer-baseline/oracle.mjs" bench "$tokdir" "$text")"
