// The bad-input catalogue (docs/errors.md), one test per row that
// errors.test.mjs does not already cover. Things the openai client cannot
// send (broken JSON, raw NUL bytes, lying Content-Length, slow headers) go
// over raw sockets. After every case the server must still serve.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startServer, postRaw, assertErrorBody, waitIdle, metrics, BIN, MODEL } from './helpers.mjs';

let srv; // default limits (8 MiB body), small context
before(async () => {
  srv = await startServer(['--ctx-size', '256']);
});
after(async () => {
  if (srv) await srv.stop();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const post = (path, body, headers) => postRaw(srv.base, path, body, headers);
const completion = (obj) => post('/v1/completions', JSON.stringify(obj));
const chat = (obj) => post('/v1/chat/completions', JSON.stringify(obj));
const hi = [{ role: 'user', content: 'Hello' }];

async function stillServes(s = srv) {
  const r = await postRaw(s.base, '/v1/completions',
    JSON.stringify({ prompt: 'Hello', max_tokens: 2 }));
  assert.equal(r.status, 200, r.text);
}

// Sends the pieces over one raw TCP connection (a piece may be a function
// returning a promise: a pause). Resolves with what came back: the status,
// the body, when the server closed, and how much was written before that.
function rawHttp(port, pieces, { timeoutMs = 10000, untilClose = false } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const sock = net.connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    let written = 0;
    let done = false;
    const finish = (why) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const text = data.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      const at = text.indexOf('\r\n\r\n');
      resolve({ status: m ? Number(m[1]) : null, head: at >= 0 ? text.slice(0, at) : text,
        body: at >= 0 ? text.slice(at + 4) : '', why, written, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    sock.on('data', (d) => {
      data = Buffer.concat([data, d]);
      // a whole response with a Content-Length is in: no need to wait for
      // the close (the connection may be kept alive)
      const text = data.toString('latin1');
      const at = text.indexOf('\r\n\r\n');
      const cl = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, at));
      if (!untilClose && at >= 0 && cl && data.length >= at + 4 + Number(cl[1])) finish('response');
    });
    sock.on('end', () => finish('closed'));
    sock.on('close', () => finish('closed'));
    sock.on('error', () => finish('error'));
    sock.on('connect', async () => {
      for (const p of pieces) {
        if (done || sock.destroyed) return;
        if (typeof p === 'function') {
          await p();
          continue;
        }
        const ok = sock.write(p);
        written += p.length;
        if (!ok) {
          await new Promise((r) => {
            const go = () => {
              sock.off('drain', go);
              sock.off('close', go);
              r();
            };
            sock.on('drain', go);
            sock.on('close', go);
          });
        }
      }
    });
  });
}

function bodyJson(r) {
  try {
    return JSON.parse(r.body);
  } catch {
    return null;
  }
}

function vmRssKb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

// --- malformed JSON -------------------------------------------------------

test('malformed JSON: empty, truncated, trailing data, not an object', async () => {
  for (const [body, re] of [
    ['', /invalid JSON/],
    ['{"prompt": "a", "max_tokens": 2', /invalid JSON/],
    ['{"prompt": "a"} {"prompt": "b"}', /invalid JSON.*end of file expected/],
    ["{'prompt': 'a'}", /invalid JSON/],
    ['{"prompt": "a",}', /invalid JSON/],
    ['[1, 2]', /must be a JSON object/],
    ['"prompt"', /invalid JSON|must be a JSON object/],
    ['null', /invalid JSON|must be a JSON object/],
  ]) {
    const r = await post('/v1/completions', body);
    assertErrorBody(r, 400, re);
    assert.equal(r.json.error.type, 'invalid_request_error');
  }
  await stillServes();
});

test('duplicate keys: the last one wins', async () => {
  const a = await post('/tokenize', '{"content": "x", "content": "Once"}');
  const b = await post('/tokenize', '{"content": "Once"}');
  assert.equal(a.status, 200, a.text);
  assert.deepEqual(a.json.tokens, b.json.tokens);
});

// --- wrong field types and ranges -------------------------------------------

test('wrong field types name the field', async () => {
  const cases = [
    [{ prompt: 'a', max_tokens: 1.5 }, 'max_tokens', /integer/],
    [{ prompt: 'a', max_tokens: '5' }, 'max_tokens', /integer/],
    [{ prompt: 'a', stream: 'yes' }, 'stream', /boolean/],
    [{ prompt: 'a', seed: 'x' }, 'seed', /integer/],
    [{ prompt: 'a', top_p: [] }, 'top_p', /number/],
    [{ prompt: 'a', stop: { a: 1 } }, 'stop', /string/],
    [{ prompt: 'a', logit_bias: { abc: 1 } }, 'logit_bias.abc', /token id/],
    [{ prompt: 'a', logit_bias: { 1: 'x' } }, 'logit_bias.1', /number/],
    [{ prompt: 'a', stream_options: 5 }, 'stream_options', /object/],
    [{ prompt: { text: 'a' } }, 'prompt', /string or a non-empty array/],
    [{ prompt: [1, 'a'] }, 'prompt[1]', /token id/],
    [{ prompt: 'a', model: 7 }, 'model', /string/],
  ];
  for (const [body, param, re] of cases) {
    const r = await completion(body);
    assertErrorBody(r, 400, re);
    assert.equal(r.json.error.param, param, r.text);
  }
  let r = await chat({ messages: ['hi'] });
  assertErrorBody(r, 400, /messages\[0\] must be an object/);
  r = await chat({ messages: [{ role: 1, content: 'a' }] });
  assertErrorBody(r, 400, /messages\[0\]\.role/);
  r = await chat({ messages: [{ role: 'user', content: [{ type: 'image_url' }] }] });
  assertErrorBody(r, 400, /no vision tower/); // a text-only model (image input: vision.test.mjs)
  r = await chat({ messages: [{ role: 'user', content: [{ type: 'audio', data: 'x' }] }] });
  assertErrorBody(r, 400, /must be a text part/);
  await stillServes();
});

test('negative, zero and huge max_tokens', async () => {
  let r = await completion({ prompt: 'a', max_tokens: 0 });
  assertErrorBody(r, 400, /max_tokens must be between 1/);
  r = await completion({ prompt: 'a', max_tokens: -100 });
  assertErrorBody(r, 400, /max_tokens/);
  r = await completion({ prompt: 'a', max_tokens: 2 ** 31 });
  assertErrorBody(r, 400, /max_tokens must be between 1 and 1073741824/);
  r = await completion({ prompt: 'a', max_tokens: 1000000 }); // in range, over the context
  assertErrorBody(r, 400, /context limit is 256/);
  assert.equal(r.json.error.code, 'context_length_exceeded');
  r = await completion({ prompt: 'a', max_completion_tokens: 0 });
  assertErrorBody(r, 400, /max_completion_tokens/);
  // numbers JSON cannot hold are invalid JSON
  r = await post('/v1/completions', '{"prompt": "a", "max_tokens": 1e400}');
  assertErrorBody(r, 400, /invalid JSON.*overflow/);
  r = await post('/v1/completions', '{"prompt": "a", "max_tokens": 99999999999999999999999}');
  assertErrorBody(r, 400, /invalid JSON.*too big integer/);
  await stillServes();
});

test('n outside 1..16 is 400', async () => {
  for (const n of [0, 17, '2']) {
    const r = await chat({ messages: hi, n, max_tokens: 2 });
    assertErrorBody(r, 400, /\bn must be/);
    assert.equal(r.json.error.param, 'n');
  }
  const ok = await chat({ messages: hi, n: 1, max_tokens: 2 });
  assert.equal(ok.status, 200, ok.text);
});

test('empty inputs: messages [], prompt [], prompt "" (BOS only)', async () => {
  let r = await chat({ messages: [], max_tokens: 2 });
  assertErrorBody(r, 400, /messages must be a non-empty array/);
  r = await completion({ prompt: [], max_tokens: 2 });
  assertErrorBody(r, 400, /non-empty array/);
  // "" tokenizes to the BOS token alone: a valid one-token prompt
  r = await completion({ prompt: '', max_tokens: 2 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.usage.prompt_tokens, 1);
  // an empty message content is valid: the template still renders a prompt
  r = await chat({ messages: [{ role: 'user', content: '' }], max_tokens: 2 });
  assert.equal(r.status, 200, r.text);
});

// --- text encoding --------------------------------------------------------

test('invalid UTF-8 in strings: overlong, surrogate, truncated, escaped surrogate', async () => {
  const wrap = (bytes) => Buffer.concat([Buffer.from('{"prompt": "a'), Buffer.from(bytes),
    Buffer.from('b", "max_tokens": 2}')]);
  for (const bytes of [[0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf8, 0x88, 0x80, 0x80]]) {
    const r = await post('/v1/completions', wrap(bytes));
    assertErrorBody(r, 400, /not valid UTF-8 \(byte 13\)/);
  }
  // a lone surrogate written as a JSON escape
  const r = await post('/v1/completions', '{"prompt": "a\\ud800b", "max_tokens": 2}');
  assertErrorBody(r, 400, /invalid JSON.*Unicode/);
  // a valid 4-byte character is fine
  const ok = await completion({ prompt: 'a\u{1F600}b', max_tokens: 2 });
  assert.equal(ok.status, 200, ok.text);
  await stillServes();
});

test('NUL: \\u0000 in a string, raw NUL in a string, NUL after the JSON', async () => {
  let r = await post('/v1/completions', '{"prompt": "a\\u0000b", "max_tokens": 2}');
  assertErrorBody(r, 400, /invalid JSON.*\\u0000 is not allowed/);
  r = await chat({ messages: [{ role: 'user', content: 'a\u0000b' }], max_tokens: 2 });
  assertErrorBody(r, 400, /\\u0000 is not allowed/);
  r = await post('/v1/completions', Buffer.from('{"prompt": "a\0b", "max_tokens": 2}'));
  assertErrorBody(r, 400, /invalid JSON.*control character 0x0/);
  r = await post('/v1/completions', Buffer.from('{"prompt": "ab", "max_tokens": 2}\0'));
  assertErrorBody(r, 400, /invalid JSON/);
  await stillServes();
});

// --- size and shape limits ------------------------------------------------

test('deeply nested JSON (100k levels) is 400, no stack overflow', async () => {
  let r = await post('/v1/completions', '['.repeat(100000));
  assertErrorBody(r, 400, /maximum parsing depth/);
  r = await post('/v1/completions', '{"a":'.repeat(100000));
  assertErrorBody(r, 400, /maximum parsing depth/);
  r = await post('/v1/chat/completions', `{"messages": ${'['.repeat(50000)}`);
  assertErrorBody(r, 400, /maximum parsing depth/);
  // nesting under the parser's limit (2048) reaches the template as data
  const deep = '['.repeat(2000) + ']'.repeat(2000);
  r = await post('/v1/chat/completions', `{"messages": [{"role": "user", "content": "hi",
    "extra": ${deep}}], "max_tokens": 2, "chat_template_kwargs": {"x": ${deep}}}`);
  assert.equal(r.status, 200, r.text);
  await stillServes();
});

test('100 MB body with Content-Length: 413 before the body is read', async () => {
  const before = vmRssKb(srv.proc.pid);
  const head = 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
    `Content-Length: ${100 * 1024 * 1024}\r\n\r\n`;
  // headers and only 64 KiB of the promised body: the answer must not wait
  // for the rest
  const r = await rawHttp(srv.port, [head, Buffer.alloc(65536, 0x20)], { timeoutMs: 5000 });
  assert.equal(r.status, 413, JSON.stringify(r));
  assert.match(bodyJson(r).error.message, /larger than 8388608 bytes/);
  assert.match(r.head, /Connection: close/i);
  assert.ok(r.ms < 3000, `413 took ${r.ms} ms`);
  // and a client that keeps pushing the whole 100 MB is cut off early
  const chunk = Buffer.alloc(1 << 20, 0x20);
  const pushAll = [head, ...Array.from({ length: 100 }, () => chunk)];
  const r2 = await rawHttp(srv.port, pushAll, { timeoutMs: 10000 });
  // closing with unread bytes makes the kernel send a reset, which may beat
  // the 413 to this client: either is fine, reading all 100 MB is not
  assert.ok(r2.status === 413 || r2.why === 'error', JSON.stringify(r2));
  assert.ok(r2.written < 100 * (1 << 20), `server read all ${r2.written} bytes`);
  const grown = vmRssKb(srv.proc.pid) - before;
  console.log(`# 100 MB Content-Length upload: 413 in ${r.ms} ms; client wrote ` +
    `${(r2.written / 1048576).toFixed(1)} MiB before the close; server RSS +${grown} kB`);
  assert.ok(grown < 32 * 1024, `server RSS grew by ${grown} kB`);
  await stillServes();
});

test('100 MB chunked body: 413 as soon as it passes --max-body, the rest is never read', async () => {
  const before = vmRssKb(srv.proc.pid);
  const head = 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
    'Transfer-Encoding: chunked\r\n\r\n';
  const data = Buffer.alloc(1 << 20, 0x20);
  const chunk = Buffer.concat([Buffer.from('100000\r\n'), data, Buffer.from('\r\n')]);
  const pieces = [head, ...Array.from({ length: 100 }, () => chunk), '0\r\n\r\n'];
  const r = await rawHttp(srv.port, pieces, { timeoutMs: 9000 });
  const grown = vmRssKb(srv.proc.pid) - before;
  console.log(`# 100 MB chunked upload: ${r.status} after ${r.ms} ms, client wrote ` +
    `${(r.written / 1048576).toFixed(1)} MiB, server RSS +${grown} kB`);
  assert.equal(r.status, 413, JSON.stringify({ ...r, body: r.body.slice(0, 200) }));
  assert.match(bodyJson(r).error.message, /larger than 8388608 bytes/);
  assert.match(r.head, /Connection: close/i);
  // the answer comes once 8 MiB are in, not after the 100 MiB
  assert.ok(r.ms < 3000, `413 took ${r.ms} ms`);
  assert.ok(r.written < 48 * (1 << 20), `the client could write ${r.written} bytes`);
  assert.ok(grown < 32 * 1024, `server RSS grew by ${grown} kB`);
  const m = await metrics(srv.base);
  assert.ok(m['spindle_http_responses_total{code="4xx"}'] >= 1);
  await stillServes();
  // a chunked body under the limit is read as usual
  const body = JSON.stringify({ prompt: 'Hello', max_tokens: 2 });
  const ok = await rawHttp(srv.port, [head, `${body.length.toString(16)}\r\n${body}\r\n`,
    '0\r\n\r\n']);
  assert.equal(ok.status, 200, ok.head);
});

test('oversized headers and URLs are refused by libmicrohttpd (431/414)', async () => {
  let r = await rawHttp(srv.port, [`GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: ${
    'a'.repeat(100000)}\r\n\r\n`]);
  assert.equal(r.status, 431, r.head);
  r = await rawHttp(srv.port, [`GET /v1/models?${'a'.repeat(100000)} HTTP/1.1\r\nHost: x\r\n\r\n`]);
  assert.equal(r.status, 414, r.head);
  r = await rawHttp(srv.port, ['POST /v1/completions HTTP/1.1\r\nHost: x\r\n' +
    'Content-Length: abc\r\n\r\n{}']);
  assert.equal(r.status, 400, r.head);
  r = await rawHttp(srv.port, ['POST /v1/completions HTTP/1.1\r\nHost: x\r\n' +
    'Content-Length: 99999999999999999999999\r\n\r\n{}']);
  assert.equal(r.status, 413, r.head);
  r = await rawHttp(srv.port, ['NOT-HTTP\r\n\r\n']);
  assert.ok(r.status === 400 || r.status === null, r.head);
  await stillServes();
});

test('a chat prompt over the context is 400 context_length_exceeded on messages', async () => {
  const r = await chat({ messages: [{ role: 'user', content: 'Once upon a time '.repeat(200) }] });
  assertErrorBody(r, 400, /context limit is 256 tokens/);
  assert.equal(r.json.error.code, 'context_length_exceeded');
  assert.equal(r.json.error.param, 'messages');
  await stillServes();
});

// --- slow clients ---------------------------------------------------------

test('slowloris: dripped headers are cut at the read timeout and free their thread', async () => {
  // 4 connection threads; 4 clients drip one header byte every 500 ms
  const s = await startServer(['--threads-http', '4']);
  try {
    const drip = [`POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Drip: `];
    for (let i = 0; i < 60; i++) drip.push(() => sleep(500), 'a');
    const t0 = Date.now();
    const slow = Array.from({ length: 4 }, () => rawHttp(s.port, drip, { timeoutMs: 30000 }));
    await sleep(1500);
    // every thread is held: a fifth client is not served meanwhile
    const blocked = await rawHttp(s.port, ['GET /health HTTP/1.1\r\nHost: x\r\n\r\n'],
      { timeoutMs: 1500 });
    assert.notEqual(blocked.status, 200, 'served while 4 slow clients held all threads');
    const cut = await Promise.all(slow);
    for (const c of cut) assert.equal(c.why, 'closed', JSON.stringify(c));
    // startServer's health probe may still hold a kept-alive slot for a few
    // seconds, so one dripper can be accepted late: check the earliest cut
    const ms = cut.map((c) => c.ms).sort((a, b) => a - b);
    console.log(`# slowloris: 4 dripping clients cut after ${ms.join(', ')} ms ` +
      `(read timeout 10 s, ${Date.now() - t0} ms in all)`);
    assert.ok(ms[0] >= 9000 && ms[0] < 12000, `first cut after ${ms[0]} ms`);
    assert.ok(ms[3] < 17000, `last cut after ${ms[3]} ms`);
    const h = await fetch(`${s.base}/health`);
    assert.equal(h.status, 200);
    await stillServes(s);
    const m = await metrics(s.base);
    assert.ok(m.spindle_http_read_timeouts_total >= 4, JSON.stringify(m));
  } finally {
    await s.stop();
  }
});

test('a kept-alive connection idle past the read timeout is closed', async () => {
  const s = await startServer([]);
  try {
    const r = await rawHttp(s.port, ['GET /health HTTP/1.1\r\nHost: x\r\n\r\n'],
      { timeoutMs: 15000, untilClose: true });
    assert.equal(r.status, 200);
    assert.equal(r.why, 'closed');
    assert.ok(r.ms >= 9000 && r.ms < 12000, `closed after ${r.ms} ms`);
  } finally {
    await s.stop();
  }
});

// --- auth -------------------------------------------------------------------

test('API key edge cases: scheme, case, spacing', async () => {
  const s = await startServer(['--api-key', 'sekret']);
  try {
    const req = (h) => postRaw(s.base, '/v1/completions',
      JSON.stringify({ prompt: 'a', max_tokens: 1 }), h);
    for (const h of [{ Authorization: 'Basic c2VrcmV0' }, { Authorization: 'Bearer' },
      { Authorization: 'Bearer ' }, { Authorization: 'Bearer  sekret' },
      { Authorization: 'Bearer sekretX' },
      { Authorization: 'sekret' }]) {
      const r = await req(h);
      assertErrorBody(r, 401, /API key/);
      assert.equal(r.json.error.code, 'invalid_api_key');
      assert.equal(r.json.error.type, 'authentication_error');
      assert.equal(r.headers.get('www-authenticate'), 'Bearer');
    }
    // the scheme is case-insensitive (RFC 7235)
    const ok = await req({ Authorization: 'bearer sekret' });
    assert.equal(ok.status, 200, ok.text);
    // /metrics and /v1/models need the key too; /health never does
    assert.equal((await fetch(`${s.base}/metrics`)).status, 401);
    assert.equal((await fetch(`${s.base}/v1/models`)).status, 401);
    assert.equal((await fetch(`${s.base}/health`)).status, 200);
    await waitIdle(s.base, 10000, { Authorization: 'Bearer sekret' });
  } finally {
    await s.stop();
  }
});

// --- model files ------------------------------------------------------------
// Every corruption of the formats is covered by tests/cli/test_bad_models.sh,
// tests/cli/test_bad_gguf.sh and the unit tests (docs/errors.md); here the
// serve command's side: a model that fails to load ends the process with
// status 1 and an error naming the file, never a crash or a hang.

function serveExit(args, env = {}) {
  return new Promise((resolve) => {
    const p = spawn(BIN, ['serve', '--port', '0', '--threads', '1', ...args],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let log = '';
    p.stdout.on('data', (d) => (log += d));
    p.stderr.on('data', (d) => (log += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), 60000);
    p.on('exit', (code, sig) => {
      clearTimeout(timer);
      resolve({ code, sig, log });
    });
  });
}

function corruptCopy(edit) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spindle-bad-model-'));
  for (const f of fs.readdirSync(MODEL)) fs.copyFileSync(path.join(MODEL, f), path.join(dir, f));
  edit(dir);
  return dir;
}

test('serve with a corrupt model, tokenizer or template exits 1 naming the file', async () => {
  const SAN = /AddressSanitizer|LeakSanitizer|runtime error:/;
  const cases = [
    ['truncated weights', corruptCopy((d) => {
      const f = path.join(d, 'model.safetensors');
      fs.truncateSync(f, Math.floor(fs.statSync(f).size / 2));
    }), [], /model\.safetensors/],
    ['tokenizer.json not JSON', corruptCopy((d) => {
      fs.writeFileSync(path.join(d, 'tokenizer.json'), '{"model": {"type": "BPE", ');
    }), [], /tokenizer\.json/],
    ['config.json missing', corruptCopy((d) => fs.rmSync(path.join(d, 'config.json'))), [],
      /config\.json/],
  ];
  const tpl = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'spindle-tpl-')), 'bad.jinja');
  fs.writeFileSync(tpl, '{% for m in messages %}{{ m.content }');
  cases.push(['template syntax error', MODEL, ['--chat-template', tpl], /chat template/]);
  for (const [what, dir, extra, re] of cases) {
    const r = await serveExit(['--model', dir, ...extra]);
    assert.equal(r.sig, null, `${what}: killed by ${r.sig}:\n${r.log}`);
    assert.equal(r.code, 1, `${what}: exit ${r.code}:\n${r.log}`);
    assert.match(r.log, re, `${what}: ${r.log}`);
    assert.doesNotMatch(r.log, SAN, `${what}: ${r.log}`);
  }
});
