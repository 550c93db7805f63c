// Builds the tools e2e model directory: Qwen 3's real tokenizer and chat
// template (build/tokenizers/qwen3, fetched by scripts/fetch-tokenizers.sh)
// with the qwen3 HF fixture's layers and a random embedding widened to
// Qwen 3's vocabulary (151936 ids, tied), so every id the real tokenizer
// produces is valid. The weights are random: the tests force the output
// through the server's test hook (see tools.test.mjs).
//
//   node make_tools_model.mjs FIXTURE_DIR TOKENIZER_DIR OUT_DIR
import fs from 'node:fs';
import path from 'node:path';

const [fixture, tokdir, out] = process.argv.slice(2);
if (!fixture || !tokdir || !out) {
  console.error('usage: node make_tools_model.mjs FIXTURE_DIR TOKENIZER_DIR OUT_DIR');
  process.exit(2);
}
const VOCAB = 151936;

function readSafetensors(file) {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const data = buf.subarray(8 + n);
  const tensors = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    tensors[name] = { dtype: t.dtype, shape: t.shape, bytes: data.subarray(t.data_offsets[0], t.data_offsets[1]) };
  }
  return tensors;
}

function writeSafetensors(file, tensors) {
  const header = { __metadata__: { format: 'pt' } };
  let off = 0;
  const names = Object.keys(tensors).sort();
  for (const name of names) {
    const t = tensors[name];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.length] };
    off += t.bytes.length;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8) json += ' ';
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(json.length));
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, head);
  fs.writeSync(fd, Buffer.from(json, 'utf8'));
  for (const name of names) fs.writeSync(fd, tensors[name].bytes);
  fs.closeSync(fd);
}

// Deterministic small normal-ish values as bf16 (the top half of an f32).
function randomBf16(count, seed) {
  const out = Buffer.alloc(count * 2);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  for (let i = 0; i < count; i++) {
    f[0] = (rnd() + rnd() + rnd() - 1.5) * 0.04;
    out.writeUInt16LE(u[0] >>> 16, i * 2);
  }
  return out;
}

fs.mkdirSync(out, { recursive: true });
const config = JSON.parse(fs.readFileSync(path.join(fixture, 'config.json'), 'utf8'));
const stamp = path.join(out, 'config.json');
if (fs.existsSync(stamp) && JSON.parse(fs.readFileSync(stamp, 'utf8')).vocab_size === VOCAB &&
    fs.existsSync(path.join(out, 'model.safetensors'))) {
  console.error(`make_tools_model: ${out} exists`);
} else {
  const tensors = readSafetensors(path.join(fixture, 'model.safetensors'));
  const emb = tensors['model.embed_tokens.weight'];
  const hidden = emb.shape[1];
  tensors['model.embed_tokens.weight'] = { dtype: 'BF16', shape: [VOCAB, hidden], bytes: randomBf16(VOCAB * hidden, 1234) };
  delete tensors['lm_head.weight'];
  writeSafetensors(path.join(out, 'model.safetensors'), tensors);
  Object.assign(config, { vocab_size: VOCAB, tie_word_embeddings: true, bos_token_id: 151643,
    eos_token_id: 151645, pad_token_id: 151643, max_position_embeddings: 4096 });
  fs.writeFileSync(path.join(out, 'generation_config.json'),
    JSON.stringify({ bos_token_id: 151643, eos_token_id: [151645, 151643] }));
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    fs.copyFileSync(path.join(tokdir, f), path.join(out, f));
  fs.writeFileSync(stamp, JSON.stringify(config, null, 2));
  console.error(`make_tools_model: ${out}: vocab ${VOCAB}, hidden ${hidden}`);
}
