// /v1/embeddings with the official openai client, against what
// sentence-transformers computed for two embedding models (--precision
// f32): the shared qwen3_lasttoken (causal, last-token pooling) and
// tests/fixtures/embeddings/gemma3_bidir_mean_dense (bidirectional with
// sliding windows, mean pooling, two Dense layers), assembled under build/.
// Every text must match within 1e-4 (cosine >= 0.9999); dimensions,
// base64, token-id inputs, a 64-input batch, and the refusals.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MODEL, startServer, postRaw, metrics, waitIdle } from './helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const shared = process.env.SPINDLE_FIXTURE
  ? path.resolve(process.env.SPINDLE_FIXTURE, '../..')
  : process.env.SP_SHARED_DIR || path.resolve(repo, '../shared');
const tokRoot = process.env.SP_TOKENIZERS_DIR || path.join(repo, 'build/tokenizers');
const buildDir = process.env.SPINDLE_FIXTURE ? path.dirname(path.resolve(MODEL)) : path.join(repo, 'build');
const QWEN = path.join(shared, 'fixtures/embeddings/qwen3_lasttoken');
const GEMMA = path.join(buildDir, 'e2e-gemma3-bidir');

function reference(dir) {
  const ref = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8'));
  const buf = fs.readFileSync(path.join(dir, 'embeddings.f32'));
  const f = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  const [n, dim] = ref.embeddings.shape;
  const vecs = [];
  for (let i = 0; i < n; i++) vecs.push(Array.from(f.subarray(i * dim, (i + 1) * dim)));
  return { texts: ref.texts, vecs, dim };
}

function compare(got, want, what) {
  assert.equal(got.length, want.length, `${what}: length`);
  let dot = 0, na = 0, nb = 0, worst = 0;
  for (let i = 0; i < want.length; i++) {
    dot += got[i] * want[i], na += got[i] ** 2, nb += want[i] ** 2;
    worst = Math.max(worst, Math.abs(got[i] - want[i]));
  }
  const cos = dot / Math.sqrt(na * nb);
  assert.ok(worst <= 1e-4 && cos >= 0.9999, `${what}: max |diff| ${worst}, cosine ${cos}`);
}

const normalized = (v) => {
  const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return v.map((x) => x / n);
};

const servers = {};
before(async () => {
  execFileSync('bash', [path.join(repo, 'tests/fixtures/embeddings/assemble.sh'), GEMMA, tokRoot],
    { stdio: 'inherit' });
  servers.qwen = await startServer(['--model', QWEN, '--precision', 'f32']);
  servers.gemma = await startServer(['--model', GEMMA, '--precision', 'f32']);
});

after(async () => {
  for (const s of Object.values(servers)) await s.stop();
});

for (const [name, dir] of [['qwen3_lasttoken', () => QWEN], ['gemma3_bidir_mean_dense', () => GEMMA]]) {
  const key = name.startsWith('qwen') ? 'qwen' : 'gemma';

  test(`${name}: every text matches sentence-transformers (client default: base64)`, async () => {
    const ref = reference(dir());
    const client = servers[key].client();
    const r = await client.embeddings.create({ model: 'm', input: ref.texts });
    assert.equal(r.object, 'list');
    assert.equal(r.data.length, ref.texts.length);
    r.data.forEach((d, i) => {
      assert.equal(d.index, i);
      assert.equal(d.object, 'embedding');
      compare(d.embedding, ref.vecs[i], `${name} text ${i}`);
    });
    // floats as JSON give the same numbers as the base64 the client asked for
    const f = await client.embeddings.create({ model: 'm', input: ref.texts, encoding_format: 'float' });
    f.data.forEach((d, i) => assert.deepEqual(d.embedding, r.data[i].embedding));
    // one at a time: the same vectors as in the batch
    const one = await client.embeddings.create({ model: 'm', input: ref.texts[5] });
    compare(one.data[0].embedding, ref.vecs[5], `${name} text 5 alone`);
    assert.ok(r.usage.prompt_tokens > 0 && r.usage.total_tokens === r.usage.prompt_tokens);
  });

  test(`${name}: dimensions truncates and renormalises; raw base64 is float32 LE`, async () => {
    const ref = reference(dir());
    const { base } = servers[key];
    const res = await postRaw(base, '/v1/embeddings',
      JSON.stringify({ input: ref.texts[0], dimensions: 8, encoding_format: 'base64' }));
    assert.equal(res.status, 200, res.text);
    const b = Buffer.from(res.json.data[0].embedding, 'base64');
    assert.equal(b.length, 8 * 4);
    const v = Array.from({ length: 8 }, (_, i) => b.readFloatLE(i * 4));
    compare(v, normalized(ref.vecs[0].slice(0, 8)), `${name} dimensions 8`);
    const full = await servers[key].client().embeddings.create({ model: 'm', input: ref.texts[0], dimensions: ref.dim });
    compare(full.data[0].embedding, ref.vecs[0], `${name} dimensions = all`);
  });

  test(`${name}: token-id inputs give the text's vector; usage counts tokens`, async () => {
    const ref = reference(dir());
    const { base } = servers[key];
    // what the model reads for a text: one user message through the chat template
    const tok = await postRaw(base, '/tokenize', JSON.stringify({
      messages: [{ role: 'user', content: ref.texts[2] }], add_generation_prompt: false }));
    assert.equal(tok.status, 200, tok.text);
    const ids = tok.json.tokens;
    const client = servers[key].client();
    const r = await client.embeddings.create({ model: 'm', input: [ids, ref.texts[2]], encoding_format: 'float' });
    compare(r.data[0].embedding, ref.vecs[2], `${name} ids`);
    compare(r.data[1].embedding, ref.vecs[2], `${name} text`);
    assert.equal(r.usage.prompt_tokens, 2 * ids.length);
    const flat = await client.embeddings.create({ model: 'm', input: ids, encoding_format: 'float' });
    assert.deepEqual(flat.data[0].embedding, r.data[0].embedding);
  });
}

test('a 64-input batch returns 64 vectors in order, batched into few engine steps', async () => {
  const ref = reference(GEMMA);
  const order = Array.from({ length: 64 }, (_, i) => (i * 5 + 3) % ref.texts.length);
  const { base } = servers.gemma;
  await waitIdle(base);
  const before = await metrics(base);
  const r = await servers.gemma.client().embeddings.create({ model: 'm', input: order.map((i) => ref.texts[i]) });
  const afterM = await metrics(base);
  assert.equal(r.data.length, 64);
  r.data.forEach((d, k) => {
    assert.equal(d.index, k);
    compare(d.embedding, ref.vecs[order[k]], `batch item ${k}`);
  });
  // up to --prefill-chunk (256) tokens per forward: a handful of steps, not 64
  const steps = afterM.spindle_engine_steps_total - before.spindle_engine_steps_total;
  const bound = Math.ceil(r.usage.prompt_tokens / 256) + 2;
  assert.ok(steps >= 1 && steps <= bound, `${steps} steps for ${r.usage.prompt_tokens} tokens (bound ${bound})`);
  await waitIdle(base); // every KV block given back
});

test('concurrent embedding requests are batched together and each gets its own vectors', async () => {
  const ref = reference(QWEN);
  const client = servers.qwen.client();
  const rs = await Promise.all(ref.texts.map((t) => client.embeddings.create({ model: 'm', input: [t, t] })));
  rs.forEach((r, i) => {
    compare(r.data[0].embedding, ref.vecs[i], `concurrent ${i}`);
    compare(r.data[1].embedding, ref.vecs[i], `concurrent ${i} again`);
  });
});

test('bad embedding requests are 400s naming the field', async () => {
  const { base } = servers.gemma;
  const cases = [
    [{}, 'input'],
    [{ input: '' }, 'input'],
    [{ input: [] }, 'input'],
    [{ input: ['ok', 3.5] }, 'input[1]'],
    [{ input: [[1, 2], [-1]] }, 'input[1][0]'],
    [{ input: [1, 99999999] }, 'input[1]'],
    [{ input: 'x', encoding_format: 'int8' }, 'encoding_format'],
    [{ input: 'x', dimensions: 0 }, 'dimensions'],
    [{ input: 'x', dimensions: 33 }, 'dimensions'],
    [{ input: 'x', model: 3 }, 'model'],
    [{ input: Array(600).fill(5) }, 'input'], // more tokens than the context (512)
  ];
  for (const [body, param] of cases) {
    const res = await postRaw(base, '/v1/embeddings', JSON.stringify(body));
    assert.equal(res.status, 400, `${JSON.stringify(body).slice(0, 80)}: ${res.text}`);
    assert.equal(res.json.error.param, param, res.text);
  }
  const chat = await postRaw(base, '/v1/chat/completions',
    JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }));
  assert.equal(chat.status, 400);
  assert.match(chat.json.error.message, /embedding model/);
  const msg = await postRaw(base, '/v1/messages',
    JSON.stringify({ max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }));
  assert.equal(msg.status, 400);
  assert.equal(msg.json.type, 'error');
});

test('a generative model: 400 without --embeddings; pooled hidden states with it', async () => {
  const plain = await startServer([]);
  try {
    const res = await postRaw(plain.base, '/v1/embeddings', JSON.stringify({ input: 'hello' }));
    assert.equal(res.status, 400);
    assert.match(res.json.error.message, /does not serve embeddings.*--embeddings/);
  } finally {
    await plain.stop();
  }
  const emb = await startServer(['--embeddings', '--pooling', 'mean']);
  try {
    const c = emb.client();
    const r = await c.embeddings.create({ model: 'm', input: ['hello there', 'hello'], encoding_format: 'float' });
    for (const d of r.data) {
      const n = Math.sqrt(d.embedding.reduce((s, x) => s + x * x, 0));
      assert.ok(Math.abs(n - 1) < 1e-5, `norm ${n}`);
    }
    assert.notDeepEqual(r.data[0].embedding, r.data[1].embedding);
    const alone = await c.embeddings.create({ model: 'm', input: 'hello', encoding_format: 'float' });
    compare(alone.data[0].embedding, r.data[1].embedding, 'batched vs alone');
    // it still generates
    const chat = await c.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
    assert.ok(chat.usage.completion_tokens >= 1);
  } finally {
    await emb.stop();
  }
});

// A scratch copy of the qwen3 embedding model with one file changed.
function variant(name, edit) {
  const dir = path.join(buildDir, `e2e-emb-${name}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(QWEN)) {
    const src = path.join(QWEN, f);
    if (fs.statSync(src).isDirectory()) fs.cpSync(src, path.join(dir, f), { recursive: true });
    else fs.symlinkSync(src, path.join(dir, f));
  }
  edit(dir);
  return dir;
}

function serveFails(dir, args = []) {
  const r = spawnSync(process.env.SPINDLE_BIN, ['serve', '--model', dir, '--port', '0', '--threads', '1', ...args],
    { encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 1, `exit ${r.status}: ${r.stderr}`);
  return r.stderr;
}

test('embedding model directories that cannot be served fail to load, naming why', async () => {
  // no modules.json: a bare Qwen3Model has no lm_head, so it cannot generate either
  const bare = variant('bare', (d) => fs.rmSync(path.join(d, 'modules.json')));
  assert.match(serveFails(bare), /no output head \(lm_head\).*--embeddings/);
  const ok = await startServer(['--model', bare, '--embeddings', '--pooling', 'last', '--precision', 'f32']);
  try {
    // last-token pooling and L2 normalisation: the reference, for token-id input
    // (the text path differs: without modules.json texts are not chat-rendered)
    const ref = reference(QWEN);
    const tok = await postRaw(ok.base, '/tokenize', JSON.stringify({
      messages: [{ role: 'user', content: ref.texts[1] }], add_generation_prompt: false }));
    const r = await ok.client().embeddings.create({ model: 'm', input: [tok.json.tokens], encoding_format: 'float' });
    compare(r.data[0].embedding, ref.vecs[1], 'bare model with --embeddings --pooling last');
  } finally {
    await ok.stop();
  }
  const weird = variant('module', (d) => {
    const mods = JSON.parse(fs.readFileSync(path.join(QWEN, 'modules.json'), 'utf8'));
    mods.splice(1, 0, { idx: 9, name: '9', path: '9_X', type: 'sentence_transformers.models.LayerNorm' });
    fs.rmSync(path.join(d, 'modules.json'));
    fs.writeFileSync(path.join(d, 'modules.json'), JSON.stringify(mods));
  });
  assert.match(serveFails(weird), /modules\.json\[1\]: .*LayerNorm/);
  const pool = variant('pooling', (d) => {
    fs.rmSync(path.join(d, '1_Pooling'), { recursive: true });
    fs.mkdirSync(path.join(d, '1_Pooling'));
    fs.writeFileSync(path.join(d, '1_Pooling/config.json'), JSON.stringify({ pooling_mode: 'median' }));
  });
  assert.match(serveFails(pool), /1_Pooling\/config\.json\.pooling_mode: unsupported mode 'median'/);
});
