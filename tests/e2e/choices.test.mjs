// n > 1 with the official client: n choices indexed 0..n-1, stream and
// non-stream; seeded choice i equals a lone request with seed + i; usage
// counts the prompt once and sums completion tokens; the prompt is prefilled
// once (prefix cache); a dropped stream cancels every choice.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, metrics, waitIdle, postRaw, assertErrorBody } from './helpers.mjs';

let srv;
let client;
before(async () => {
  srv = await startServer(['--ctx-size', '1024', '--parallel', '8', '--block-size', '16']);
  client = srv.client();
});
after(async () => {
  if (srv) await srv.stop();
});

const MSGS = [
  { role: 'system', content: 'You tell short stories about a girl named Lily and her dog.' },
  { role: 'user', content: 'Once upon a time' },
];
const SAMPLED = { model: 'x', temperature: 1.0, top_p: 0.95, max_tokens: 12, ignore_eos: true };

// Per-index text, finish reasons and role chunks of a chat or completion stream.
async function collectByIndex(stream, chat) {
  const text = {};
  const finish = {};
  const roles = {};
  let usage = null;
  let lpCount = {};
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    assert.ok(chunk.choices.length <= 1, 'one choice per chunk');
    for (const c of chunk.choices) {
      const i = c.index;
      text[i] ??= '';
      text[i] += chat ? (c.delta?.content || '') : (c.text || '');
      if (chat && c.delta?.role) roles[i] = (roles[i] || 0) + 1;
      if (c.finish_reason) (finish[i] ??= []).push(c.finish_reason);
      const lp = chat ? c.logprobs?.content : c.logprobs?.tokens;
      if (lp) lpCount[i] = (lpCount[i] || 0) + lp.length;
    }
  }
  return { text, finish, roles, usage, lpCount };
}

test('chat n=3 with a seed: choice i equals a lone request with seed + i', async () => {
  const r = await client.chat.completions.create({ ...SAMPLED, messages: MSGS, n: 3, seed: 77 });
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  let sum = 0;
  for (let i = 0; i < 3; i++) {
    const lone = await client.chat.completions.create({ ...SAMPLED, messages: MSGS, seed: 77 + i });
    assert.equal(r.choices[i].message.content, lone.choices[0].message.content, `choice ${i}`);
    assert.equal(r.choices[i].finish_reason, lone.choices[0].finish_reason);
    assert.equal(r.choices[i].message.role, 'assistant');
    assert.equal(r.usage.prompt_tokens, lone.usage.prompt_tokens, 'the prompt counts once');
    sum += lone.usage.completion_tokens;
  }
  assert.equal(r.usage.completion_tokens, sum);
  assert.equal(r.usage.completion_tokens, 3 * 12);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + sum);
  const texts = new Set(r.choices.map((c) => c.message.content));
  assert.ok(texts.size > 1, `different seeds gave the same text: ${[...texts]}`);
});

test('chat n=3 stream: per-index chunks, one finish each, same text as non-stream', async () => {
  const req = { ...SAMPLED, messages: MSGS, n: 3, seed: 5 };
  const full = await client.chat.completions.create(req);
  const s = await collectByIndex(await client.chat.completions.create({ ...req, stream: true,
    stream_options: { include_usage: true } }), true);
  for (let i = 0; i < 3; i++) {
    assert.equal(s.text[i], full.choices[i].message.content, `choice ${i}`);
    assert.deepEqual(s.finish[i], [full.choices[i].finish_reason], `choice ${i} finishes once`);
    assert.equal(s.roles[i], 1, `choice ${i} gets one role chunk`);
  }
  assert.deepEqual(Object.keys(s.text).sort(), ['0', '1', '2']);
  assert.deepEqual(s.usage, full.usage);
});

test('completions n=3 stream and non-stream with logprobs per choice', async () => {
  const req = { ...SAMPLED, prompt: 'Once upon a time, there was', n: 3, seed: 9, logprobs: 2 };
  const full = await client.completions.create(req);
  assert.deepEqual(full.choices.map((c) => c.index), [0, 1, 2]);
  for (const c of full.choices) {
    assert.equal(c.logprobs.tokens.length, 12);
    assert.equal(c.logprobs.top_logprobs.length, 12);
    assert.equal(c.logprobs.text_offset[0], 0, 'each choice has its own text offsets');
  }
  const s = await collectByIndex(await client.completions.create({ ...req, stream: true,
    stream_options: { include_usage: true } }), false);
  for (let i = 0; i < 3; i++) {
    assert.equal(s.text[i], full.choices[i].text, `choice ${i}`);
    assert.deepEqual(s.finish[i], ['length']);
    assert.equal(s.lpCount[i], 12);
  }
  assert.equal(s.usage.completion_tokens, 36);
  assert.equal(s.usage.prompt_tokens, full.usage.prompt_tokens);
});

test('greedy n=2 gives identical choices', async () => {
  const r = await client.chat.completions.create({ model: 'x', messages: MSGS, n: 2,
    temperature: 0, max_tokens: 16 });
  assert.equal(r.choices.length, 2);
  assert.equal(r.choices[0].message.content, r.choices[1].message.content);
  assert.ok(r.choices[0].message.content.length > 0);
  const lone = await client.chat.completions.create({ model: 'x', messages: MSGS, temperature: 0,
    max_tokens: 16 });
  assert.equal(r.choices[0].message.content, lone.choices[0].message.content);
  assert.equal(r.usage.completion_tokens, 2 * lone.usage.completion_tokens);
});

test('n outside 1..16 is 400 naming n', async () => {
  for (const n of [0, 17, 1000, '2', 1.5]) {
    const r = await postRaw(srv.base, '/v1/chat/completions',
      JSON.stringify({ messages: MSGS, n, max_tokens: 2 }));
    assertErrorBody(r, 400, /\bn must be/);
    assert.equal(r.json.error.param, 'n');
  }
  const r = await postRaw(srv.base, '/v1/completions',
    JSON.stringify({ prompt: 'a', n: 17, max_tokens: 2 }));
  assertErrorBody(r, 400, /n must be between 1 and 16, got 17/);
  const ok = await client.completions.create({ model: 'x', prompt: 'a', n: 16, max_tokens: 2 });
  assert.equal(ok.choices.length, 16);
});

test('the prompt is prefilled once for all choices', async () => {
  // 40 fresh prompt tokens: 2 full blocks of 16 are shared, and each extra
  // choice computes only the last 8 (at least one token is always computed)
  const prompt = Array.from({ length: 40 }, (_, i) => 20 + ((i * 37) % 180));
  const before = await waitIdle(srv.base);
  const r = await client.completions.create({ model: 'x', prompt, n: 4, max_tokens: 4,
    temperature: 0 });
  const m = await waitIdle(srv.base);
  assert.equal(r.usage.prompt_tokens, 40);
  assert.equal(r.usage.prompt_tokens_details.cached_tokens, 0, 'choice 0 saw a fresh prompt');
  const prefilled = m.spindle_prefill_tokens_total - before.spindle_prefill_tokens_total;
  const hits = m.spindle_prefix_cache_hit_tokens_total - before.spindle_prefix_cache_hit_tokens_total;
  assert.equal(prefilled, 40 + 3 * 8, `prefilled ${prefilled}`);
  assert.equal(hits, 3 * 32);
});

test('dropping an n=4 stream cancels every choice and frees the blocks', async () => {
  const before = await waitIdle(srv.base);
  const cancelled = 'spindle_requests_finished_total{reason="cancelled"}';
  const ac = new AbortController();
  const stream = await client.chat.completions.create({ model: 'x', messages: MSGS, n: 4,
    max_tokens: 900, temperature: 0, ignore_eos: true, stream: true }, { signal: ac.signal });
  let n = 0;
  try {
    for await (const chunk of stream) {
      if (chunk.choices.length && ++n === 12) ac.abort();
    }
  } catch (e) {
    assert.match(String(e.name), /Abort/);
  }
  assert.ok(n >= 12);
  const after = await waitIdle(srv.base);
  assert.equal(after[cancelled], before[cancelled] + 4, 'all four choices were cancelled');
  assert.equal(after.spindle_kv_blocks_free, after.spindle_kv_blocks_total);
  const r = await client.completions.create({ model: 'x', prompt: 'Once', max_tokens: 3, n: 2 });
  assert.equal(r.choices.length, 2);
});
