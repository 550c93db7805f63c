// Builds the e2e test model directory: an HF fixture (config.json,
// generation_config.json, model.safetensors; vocab 512, random weights) plus a
// small but real byte-level BPE tokenizer.json whose ids all fit in 512:
// 5 special tokens, the 256 byte symbols, and merges learned here from a
// fixed text. No chat template: the server's ChatML fallback is used.
//
//   node make_model.mjs FIXTURE_DIR OUT_DIR
import fs from 'node:fs';
import path from 'node:path';

const [fixture, out] = process.argv.slice(2);
if (!fixture || !out) {
  console.error('usage: node make_model.mjs FIXTURE_DIR OUT_DIR');
  process.exit(2);
}
fs.mkdirSync(out, { recursive: true });
for (const f of ['config.json', 'generation_config.json', 'model.safetensors']) {
  const src = path.join(fixture, f);
  const dst = path.join(out, f);
  if (!fs.existsSync(src)) continue;
  fs.rmSync(dst, { force: true });
  fs.copyFileSync(src, dst);
  fs.chmodSync(dst, 0o644);
}
const config = JSON.parse(fs.readFileSync(path.join(fixture, 'config.json'), 'utf8'));
const vocabSize = config.vocab_size;

// GPT-2's byte -> printable character table (what ByteLevel uses).
function bytesToUnicode() {
  const bs = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const map = {};
  bs.forEach((b, i) => (map[b] = String.fromCodePoint(cs[i])));
  return map;
}

const specials = ['<pad>', '<s>', '</s>', '<|im_start|>', '<|im_end|>'];
const vocab = {};
specials.forEach((s, i) => (vocab[s] = i));
const b2u = bytesToUnicode();
for (let b = 0; b < 256; b++) vocab[b2u[b]] = specials.length + b;

// Learn merges on a fixed text, words split GPT-2 style (leading space kept).
const corpus = `Once upon a time, there was a little girl named Lily. She liked to play
outside in the sun with her friends. One day, she saw a big red ball in the park.
The user asked the assistant a question and the assistant answered the user.
Hello world, hello there. The cat sat on the mat and the dog ran to the tree.`;
const words = corpus.match(/ ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+/g);
let seqs = words.map((w) => [...Buffer.from(w, 'utf8')].map((b) => b2u[b]));
const merges = [];
const nMerges = Math.min(120, vocabSize - Object.keys(vocab).length);
for (let m = 0; m < nMerges; m++) {
  const counts = new Map();
  for (const s of seqs)
    for (let i = 0; i + 1 < s.length; i++) {
      const k = s[i] + ' ' + s[i + 1];
      counts.set(k, (counts.get(k) || 0) + 1);
    }
  let best = null;
  for (const [k, c] of counts) if (!best || c > best[1] || (c === best[1] && k < best[0])) best = [k, c];
  if (!best || best[1] < 2) break;
  const [a, b] = best[0].split(' ');
  merges.push(best[0]);
  vocab[a + b] = Object.keys(vocab).length;
  seqs = seqs.map((s) => {
    const r = [];
    for (let i = 0; i < s.length; i++) {
      if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
        r.push(a + b);
        i++;
      } else r.push(s[i]);
    }
    return r;
  });
}

const added = specials.map((content, id) => ({
  id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
}));
const tokenizer = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: added,
  normalizer: null,
  pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  post_processor: {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [
      { SpecialToken: { id: '<s>', type_id: 0 } },
      { Sequence: { id: 'A', type_id: 0 } },
      { Sequence: { id: 'B', type_id: 1 } },
    ],
    special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
  },
  decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: {
    type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
    end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false,
    vocab, merges,
  },
};
fs.writeFileSync(path.join(out, 'tokenizer.json'), JSON.stringify(tokenizer));
fs.writeFileSync(
  path.join(out, 'tokenizer_config.json'),
  JSON.stringify({ bos_token: '<s>', eos_token: '</s>', pad_token: '<pad>', add_bos_token: true }),
);
console.error(`make_model: ${out}: ${Object.keys(vocab).length} tokens (${merges.length} merges)`);
