// Bad input: each case gets its status and an OpenAI-shaped error body, and
// the server keeps serving afterwards.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, postRaw, assertErrorBody, waitIdle } from './helpers.mjs';

// A template that refuses a role, as real templates do with raise_exception.
const TEMPLATE = "{% for m in messages %}{% if m['role'] == 'tool' %}" +
  "{{ raise_exception('tool messages are not supported') }}{% endif %}" +
  "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

let srv;
let keyed;
before(async () => {
  srv = await startServer(['--ctx-size', '256', '--max-body', '65536']);
  const tpl = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'spindle-e2e-')), 't.jinja');
  fs.writeFileSync(tpl, TEMPLATE);
  keyed = await startServer(['--ctx-size', '2048', '--api-key', 'sekret', '--parallel', '1',
    '--queue', '1', '--chat-template', tpl]);
});
after(async () => {
  if (srv) await srv.stop();
  if (keyed) await keyed.stop();
});

const chat = (body) => postRaw(srv.base, '/v1/chat/completions', JSON.stringify(body));
const okMsgs = [{ role: 'user', content: 'Hello' }];

async function stillServes(s = srv, headers = {}) {
  const r = await postRaw(s.base, '/v1/completions',
    JSON.stringify({ prompt: 'Hello', max_tokens: 2 }), headers);
  assert.equal(r.status, 200, r.text);
}

test('invalid JSON is 400', async () => {
  assertErrorBody(await postRaw(srv.base, '/v1/chat/completions', '{"messages": ['), 400,
    /invalid JSON/);
  await stillServes();
});

test('invalid UTF-8 is 400', async () => {
  const body = Buffer.concat([Buffer.from('{"prompt": "ab'), Buffer.from([0xff, 0xfe]),
    Buffer.from('", "max_tokens": 2}')]);
  assertErrorBody(await postRaw(srv.base, '/v1/completions', body), 400, /UTF-8/);
  await stillServes();
});

test('schema errors name the JSON path', async () => {
  let r = await chat({ messages: 'hi' });
  assertErrorBody(r, 400, /messages/);
  assert.equal(r.json.error.param, 'messages');
  r = await chat({ messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 5 }] });
  assertErrorBody(r, 400, /messages\[1\]\.content must be a string or an array of text parts/);
  r = await chat({ messages: [{ content: 'a' }] });
  assertErrorBody(r, 400, /messages\[0\]\.role/);
  r = await chat({ messages: okMsgs, temperature: 'hot' });
  assertErrorBody(r, 400, /temperature/);
  r = await chat({ messages: okMsgs, n: 17 });
  assertErrorBody(r, 400, /\bn\b/);
  r = await chat({ messages: okMsgs, max_tokens: -1 });
  assertErrorBody(r, 400, /max_tokens/);
  r = await chat({ messages: okMsgs, stop: [1] });
  assertErrorBody(r, 400, /stop\[0\]/);
  r = await postRaw(srv.base, '/v1/completions', JSON.stringify({ prompt: [1, 99999] }));
  assertErrorBody(r, 400, /prompt\[1\]/);
  r = await postRaw(srv.base, '/v1/completions', JSON.stringify({ max_tokens: 3 }));
  assertErrorBody(r, 400, /prompt/);
  // unknown fields are ignored, text parts are accepted
  r = await chat({ messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }],
    max_tokens: 2, some_future_field: { x: 1 } });
  assert.equal(r.status, 200, r.text);
  await stillServes();
});

test('context overflow is 400 with the numbers', async () => {
  const long = Array.from({ length: 300 }, (_, i) => 10 + (i % 200));
  let r = await postRaw(srv.base, '/v1/completions', JSON.stringify({ prompt: long }));
  assertErrorBody(r, 400, /300 tokens.*256/);
  assert.equal(r.json.error.code, 'context_length_exceeded');
  r = await postRaw(srv.base, '/v1/completions',
    JSON.stringify({ prompt: long.slice(0, 100), max_tokens: 200 }));
  assertErrorBody(r, 400, /256/);
  await stillServes();
});

test('unknown route is 404, wrong method is 405', async () => {
  let r = await fetch(`${srv.base}/v1/nothing`);
  assertErrorBody({ status: r.status, json: await r.json(), text: '' }, 404);
  r = await fetch(`${srv.base}/v1/chat/completions`);
  assertErrorBody({ status: r.status, json: await r.json(), text: '' }, 405);
  await stillServes();
});

test('a body over --max-body is 413', async () => {
  const big = JSON.stringify({ prompt: 'x'.repeat(100000), max_tokens: 1 });
  assertErrorBody(await postRaw(srv.base, '/v1/completions', big), 413);
  await stillServes();
});

test('a missing or wrong API key is 401; /health stays open', async () => {
  assertErrorBody(await postRaw(keyed.base, '/v1/completions', '{"prompt":"a"}'), 401);
  assertErrorBody(await postRaw(keyed.base, '/v1/completions', '{"prompt":"a"}',
    { Authorization: 'Bearer sekreT' }), 401);
  assert.equal((await fetch(`${keyed.base}/health`)).status, 200);
  const c = keyed.client({ apiKey: 'sekret' });
  const r = await c.completions.create({ model: 'x', prompt: 'a', max_tokens: 2 });
  assert.equal(r.choices.length, 1);
});

test('a template error is 400 with the template\'s message', async () => {
  const auth = { Authorization: 'Bearer sekret' };
  const r = await postRaw(keyed.base, '/v1/chat/completions', JSON.stringify({
    messages: [{ role: 'user', content: 'hi' }, { role: 'tool', content: 'x' }] }), auth);
  assertErrorBody(r, 400, /tool messages are not supported/);
  const ok = await postRaw(keyed.base, '/v1/chat/completions', JSON.stringify({
    messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }), auth);
  assert.equal(ok.status, 200, ok.text);
});

test('a full queue answers 503 with Retry-After at once', async () => {
  const auth = { Authorization: 'Bearer sekret' };
  const body = JSON.stringify({ prompt: 'Once', max_tokens: 1900, ignore_eos: true });
  const all = await Promise.all(
    Array.from({ length: 6 }, () => postRaw(keyed.base, '/v1/completions', body, auth)));
  const busy = all.filter((r) => r.status === 503);
  const ok = all.filter((r) => r.status === 200);
  assert.ok(busy.length >= 1, `statuses ${all.map((r) => r.status)}`);
  assert.ok(ok.length >= 1, `statuses ${all.map((r) => r.status)}`);
  assert.equal(busy.length + ok.length, all.length);
  for (const r of busy) {
    assertErrorBody(r, 503, /queue/);
    assert.ok(r.headers.get('retry-after'));
  }
  await waitIdle(keyed.base, 10000, auth);
  await stillServes(keyed, auth);
});
