// Node oracle for the tokenizer: @lenml/tokenizers (a transformers.js fork)
// loads the same tokenizer.json/tokenizer_config.json as Spindle.
//   node oracle.mjs gen N SEED            -> JSON array of N test strings
//   node oracle.mjs encode DIR FILE.json  -> JSON array of id arrays
//                                           (add_special_tokens=false)
//   node oracle.mjs bench DIR FILE        -> encode speed of FILE in MB/s
// The package is looked up in $SP_NODE_MODULES (a folder holding
// node_modules/@lenml/tokenizers), default <repo>/build/node-oracle.
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = process.env.SP_NODE_MODULES || path.join(here, "../../build/node-oracle");

function load(dir) {
  const require = createRequire(path.join(modules, "package.json"));
  const { TokenizerLoader } = require("@lenml/tokenizers");
  const read = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
  return TokenizerLoader.fromPreTrained({
    tokenizerJSON: read("tokenizer.json"),
    tokenizerConfig: read("tokenizer_config.json"),
  });
}

// Deterministic generator (mulberry32) of strings that stress the
// tokenizer: long words, CJK, emoji, digits, mixed whitespace, \r\n,
// leading spaces, combining marks, special-token text, rare code points.
// U+0085, U+180E and U+FEFF are left out on purpose: JavaScript's \s
// disagrees with Oniguruma's (which Hugging Face uses) on them.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const parts = [
  () => "the", () => "Hello", () => "world", () => "don't", () => "I'M", () => "we'll",
  () => "naïve", () => "café", () => "Straße", () => "İstanbul", () => "ΣΊΣΥΦΟΣ",
  () => "日本語", () => "中文分词", () => "한국어", () => "ไทย", () => "עברית", () => "العربية",
  () => "😀", () => "👍🏽", () => "🇺🇸", () => "👨\u200d👩\u200d👧", () => "🤖",
  () => "e\u0301", () => "\u0301", () => "\uFFFD", () => "\uFFFF", () => "\u{10FFFF}",
  () => "\uE000", () => "\u00A0", () => "\u2009", () => "\u3000", () => "\u200B",
  () => "\u2028", () => "\u2029", () => "\x00", () => "\x07", () => "\x7F", () => "ﬁ", () => "Ⅻ", () => "Ａｂｃ",
  () => " ", () => "  ", () => "    ", () => "\t", () => "\n", () => "\r\n", () => "\r",
  () => "\n\n\n", () => " \n ", () => "<bos>", () => "<|eot_id|>", () => "<|im_start|>",
  () => "<start_of_turn>", () => "</think>", () => "<0x41>", () => "<unk>", () => "▁", () => "Ġ",
  () => "def f(x):", () => "return x ** 2", () => "a->b", () => "i++;", () => "{}[]()",
  () => "https://x.org/a?b=1", () => "$100.00", () => "3.14159", () => "1,000,000",
];

function generate(n, seed) {
  const r = rng(seed);
  const pick = (k) => Math.floor(r() * k);
  const out = [];
  for (let i = 0; i < n; i++) {
    const kind = pick(6);
    let s = "";
    if (kind === 0) {
      // a long run of one or two characters (merge loop on long words)
      const ch = ["a", "ab", "ё", "中", "0", " ", "\n", "-", "=", "😀"][pick(10)];
      s = (r() < 0.5 ? " " : "") + ch.repeat(20 + pick(400));
    } else if (kind === 1) {
      // numbers with many digits
      let d = "";
      const len = 1 + pick(40);
      for (let k = 0; k < len; k++) d += String(pick(10));
      s = (r() < 0.5 ? " " : "") + d + (r() < 0.5 ? "." + pick(1000) : "");
    } else {
      const len = 1 + pick(14);
      for (let k = 0; k < len; k++) {
        s += parts[pick(parts.length)]();
        if (r() < 0.6) s += [" ", " ", " ", "", "\n", "  ", "\t"][pick(7)];
      }
    }
    out.push(s);
  }
  return out;
}

const [, , cmd, ...args] = process.argv;
if (cmd === "gen") {
  process.stdout.write(JSON.stringify(generate(+args[0], +args[1])) + "\n");
} else if (cmd === "encode") {
  const tok = load(args[0]);
  const strings = JSON.parse(fs.readFileSync(args[1], "utf8"));
  const ids = strings.map((s) => Array.from(tok.encode(s, { add_special_tokens: false })));
  process.stdout.write(ids.map((v) => JSON.stringify(v)).join("\n") + "\n");
} else if (cmd === "bench") {
  const tok = load(args[0]);
  const text = fs.readFileSync(args[1], "utf8");
  const bytes = Buffer.byteLength(text, "utf8");
  // CPU time (user + system) as well as wall time: a busy machine inflates
  // the latter. Node's GC threads add a little CPU time of their own.
  let best = Infinity, bestWall = Infinity, count = 0;
  for (let r = 0; r < 3; r++) {
    const c0 = process.cpuUsage(), t0 = process.hrtime.bigint();
    count = tok.encode(text, { add_special_tokens: false }).length;
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = process.cpuUsage(c0);
    best = Math.min(best, (c.user + c.system) / 1e6);
    bestWall = Math.min(bestWall, wall);
  }
  console.log(JSON.stringify({ bytes, tokens: count, cpu_seconds: +best.toFixed(4),
                               wall_seconds: +bestWall.toFixed(4),
                               mb_per_s: +(bytes / 1e6 / best).toFixed(2) }));
} else {
  console.error("usage: node oracle.mjs gen N SEED | encode DIR FILE.json | bench DIR FILE");
  process.exit(2);
}
