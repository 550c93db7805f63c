// The OpenAI API surface with the official client: streaming equals
// non-streaming, seeds reproduce, stop strings cut exactly, usage counts,
// logprobs, prefix reuse across chat turns, and aborted streams.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  startServer, metrics, waitIdle, postRaw, collectChatStream, collectCompletionStream, MODEL, sleep,
} from './helpers.mjs';

let srv;
let client;
before(async () => {
  srv = await startServer(['--ctx-size', '2048', '--parallel', '4', '--block-size', '16']);
  client = srv.client();
});
after(async () => {
  if (srv) await srv.stop();
});

const SYSTEM = 'You are a helpful assistant. You tell short and happy stories about a little ' +
  'girl named Lily and her friends, the cat and the dog, who play in the park every day.';
const MSGS = [
  { role: 'system', content: SYSTEM },
  { role: 'user', content: 'Once upon a time' },
];
const PROMPT = 'Once upon a time, there was a little girl named Lily.';

test('served model id is the file or directory name', async () => {
  const list = await client.models.list();
  assert.equal(list.data.length, 1);
  assert.equal(list.data[0].id, path.basename(MODEL.replace(/\/+$/, '')));
  const h = await fetch(`${srv.base}/health`);
  assert.equal(h.status, 200);
});

test('stream and non-stream greedy results are identical', async () => {
  const req = { model: 'anything', messages: MSGS, max_tokens: 24, temperature: 0 };
  const a = await client.chat.completions.create(req);
  const a2 = await client.chat.completions.create(req);
  const b = await collectChatStream(await client.chat.completions.create({ ...req, stream: true }));
  assert.ok(a.choices[0].message.content.length > 0);
  assert.equal(a2.choices[0].message.content, a.choices[0].message.content);
  assert.equal(b.text, a.choices[0].message.content);
  assert.equal(b.finish, a.choices[0].finish_reason);

  const creq = { model: 'x', prompt: PROMPT, max_tokens: 24, temperature: 0 };
  const c = await client.completions.create(creq);
  const d = await collectCompletionStream(await client.completions.create({ ...creq, stream: true }));
  assert.equal(d.text, c.choices[0].text);
  assert.equal(d.finish, c.choices[0].finish_reason);
});

test('the same seed reproduces sampled output', async () => {
  const req = { model: 'x', prompt: PROMPT, max_tokens: 24, temperature: 1.0, top_p: 0.95,
    ignore_eos: true };
  const r1 = await client.completions.create({ ...req, seed: 1234 });
  const r2 = await client.completions.create({ ...req, seed: 1234 });
  const r3 = await collectCompletionStream(
    await client.completions.create({ ...req, seed: 1234, stream: true }));
  assert.equal(r2.choices[0].text, r1.choices[0].text);
  assert.equal(r3.text, r1.choices[0].text);
  const others = [];
  for (const seed of [1, 2, 3])
    others.push((await client.completions.create({ ...req, seed })).choices[0].text);
  assert.ok(others.some((t) => t !== r1.choices[0].text), 'other seeds give other text');
});

// A stop string taken from the greedy text itself: the reply must be exactly
// the text before its first occurrence.
function pickStop(text, len, from) {
  for (let i = from; i + len <= text.length; i++) {
    const s = text.slice(i, i + len);
    if (!s.includes('\uFFFD') && !/^\s+$/.test(s)) return { stop: s, at: text.indexOf(s) };
  }
  return null;
}

test('stop strings cut exactly', async () => {
  const req = { model: 'x', prompt: PROMPT, max_tokens: 40, temperature: 0, ignore_eos: true };
  const full = (await client.completions.create(req)).choices[0].text;
  const p = pickStop(full, 2, Math.floor(full.length / 3));
  assert.ok(p, `no usable stop string in ${JSON.stringify(full)}`);
  const want = full.slice(0, p.at);
  const r = await client.completions.create({ ...req, stop: [p.stop] });
  assert.equal(r.choices[0].text, want);
  assert.equal(r.choices[0].finish_reason, 'stop');
  const s = await collectCompletionStream(
    await client.completions.create({ ...req, stop: p.stop, stream: true }));
  assert.equal(s.text, want);
  assert.equal(s.finish, 'stop');
  // with several stop strings the earliest match wins
  const q = pickStop(full, 1, 0);
  const many = await client.completions.create({ ...req, stop: [p.stop, q.stop] });
  assert.equal(many.choices[0].text, full.slice(0, Math.min(p.at, q.at)));
});

test('usage counts are right', async () => {
  const tok = await postRaw(srv.base, '/tokenize', JSON.stringify({ prompt: PROMPT }));
  assert.equal(tok.status, 200);
  const r = await client.completions.create({ model: 'x', prompt: PROMPT, max_tokens: 10,
    temperature: 0, ignore_eos: true });
  assert.equal(r.usage.prompt_tokens, tok.json.tokens.length);
  assert.equal(r.usage.completion_tokens, 10);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 10);
  assert.equal(r.choices[0].finish_reason, 'length');

  // the same ids as a token-array prompt give the same completion
  const ids = await client.completions.create({ model: 'x', prompt: tok.json.tokens,
    max_tokens: 10, temperature: 0, ignore_eos: true });
  assert.equal(ids.choices[0].text, r.choices[0].text);

  const ctok = await postRaw(srv.base, '/tokenize', JSON.stringify({ messages: MSGS }));
  const req = { model: 'x', messages: MSGS, max_tokens: 7, temperature: 0, ignore_eos: true };
  const c = await client.chat.completions.create(req);
  assert.equal(c.usage.prompt_tokens, ctok.json.tokens.length);
  assert.equal(c.usage.completion_tokens, 7);
  const s = await collectChatStream(await client.chat.completions.create({ ...req, stream: true,
    stream_options: { include_usage: true } }));
  assert.ok(s.usage, 'include_usage sends a usage chunk');
  assert.equal(s.usage.prompt_tokens, c.usage.prompt_tokens);
  assert.equal(s.usage.completion_tokens, 7);
  assert.equal(s.usage.total_tokens, c.usage.total_tokens);

  // detokenize inverts tokenize (without the BOS the tokenizer adds)
  const noBos = await postRaw(srv.base, '/tokenize',
    JSON.stringify({ prompt: PROMPT, add_special: false }));
  const de = await postRaw(srv.base, '/detokenize', JSON.stringify({ tokens: noBos.json.tokens }));
  assert.equal(de.json.content, PROMPT);
});

test('logprobs: the greedy token is the most likely one', async () => {
  const r = await client.chat.completions.create({ model: 'x', messages: MSGS, max_tokens: 5,
    temperature: 0, ignore_eos: true, logprobs: true, top_logprobs: 3 });
  const lp = r.choices[0].logprobs.content;
  assert.equal(lp.length, 5);
  for (const e of lp) {
    assert.equal(e.top_logprobs.length, 3);
    assert.ok(e.logprob <= 0);
    assert.ok(Math.abs(e.logprob - e.top_logprobs[0].logprob) < 1e-6);
    assert.ok(e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob);
  }
});

test('a second chat turn reuses the cached prefix', async () => {
  const turn1 = await client.chat.completions.create({ model: 'x', messages: MSGS,
    max_tokens: 8, temperature: 0 });
  const reply = turn1.choices[0].message.content;
  const before = await metrics(srv.base);
  const msgs2 = [...MSGS, { role: 'assistant', content: reply },
    { role: 'user', content: 'And then what happened to the dog?' }];
  const turn2 = await client.chat.completions.create({ model: 'x', messages: msgs2,
    max_tokens: 8, temperature: 0 });
  const after = await metrics(srv.base);
  const cached = turn2.usage.prompt_tokens_details.cached_tokens;
  assert.ok(cached > 0, `cached_tokens = ${cached}`);
  // the first turn's prompt, bar the last partial block, came from the cache
  assert.ok(cached >= Math.floor((turn1.usage.prompt_tokens - 1) / 16) * 16 - 16,
    `cached ${cached} of turn-1 prompt ${turn1.usage.prompt_tokens}`);
  const prefilled = after.spindle_prefill_tokens_total - before.spindle_prefill_tokens_total;
  assert.equal(prefilled, turn2.usage.prompt_tokens - cached, 'only the new tokens are prefilled');
  assert.equal(after.spindle_prefix_cache_hit_tokens_total -
    before.spindle_prefix_cache_hit_tokens_total, cached);
});

test('aborting a stream cancels it and frees its blocks', async () => {
  const before = await waitIdle(srv.base);
  const cancelled = 'spindle_requests_finished_total{reason="cancelled"}';
  const ac = new AbortController();
  const stream = await client.chat.completions.create({ model: 'x', messages: MSGS,
    max_tokens: 1900, temperature: 0, ignore_eos: true, stream: true }, { signal: ac.signal });
  let n = 0;
  let text = '';
  try {
    // the client ends the iteration quietly on abort
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content || '';
      if (chunk.choices.length && ++n === 3) ac.abort();
    }
  } catch (e) {
    assert.match(String(e.name), /Abort/);
  }
  assert.ok(n >= 3);
  const after = await waitIdle(srv.base);
  assert.equal(after[cancelled], before[cancelled] + 1, 'the request was cancelled');
  assert.equal(after.spindle_kv_blocks_free, after.spindle_kv_blocks_total);
  // and the server keeps serving
  const r = await client.completions.create({ model: 'x', prompt: PROMPT, max_tokens: 3 });
  assert.equal(r.choices.length, 1);
});

// Its own server with a long context: the request must still be generating
// when the client goes away (1,900 tokens of the fixture model took under
// 150 ms on a fast CI machine), and the abort waits until the request runs.
test('a client that drops a non-streaming request cancels it', async () => {
  const long = await startServer(['--ctx-size', '32768', '--parallel', '1']);
  try {
    const before = await waitIdle(long.base);
    const cancelled = 'spindle_requests_finished_total{reason="cancelled"}';
    const ac = new AbortController();
    const p = long.client().completions.create({ model: 'x', prompt: PROMPT, max_tokens: 32000,
      temperature: 0, ignore_eos: true }, { signal: ac.signal });
    p.catch(() => {});
    for (let t = 0; t < 10000; t += 5) {
      if ((await metrics(long.base)).spindle_requests_running > 0) break;
      await sleep(5);
    }
    ac.abort();
    await assert.rejects(p);
    const after = await waitIdle(long.base, 30000);
    assert.equal(after[cancelled], before[cancelled] + 1, 'the request was cancelled');
    assert.equal(after.spindle_kv_blocks_free, after.spindle_kv_blocks_total);
  } finally {
    await long.stop();
  }
});
