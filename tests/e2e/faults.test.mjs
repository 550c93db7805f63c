// Engine fault survival (docs/errors.md, "Engine faults"), driven by the
// test-only SPINDLE_TEST_FAULT hooks: an error inside one request fails only
// that request; a dead engine thread turns /health 503 and ends the process
// with a non-zero status instead of hanging.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, postRaw, waitIdle, metrics } from './helpers.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const SANITIZER = /WARNING: ThreadSanitizer|ERROR: AddressSanitizer|runtime error:|LeakSanitizer/;

// startServer passes its environment on to the server process.
async function startWithFault(spec, args) {
  process.env.SPINDLE_TEST_FAULT = spec;
  try {
    return await startServer(args);
  } finally {
    delete process.env.SPINDLE_TEST_FAULT;
  }
}

// A streaming completion read as raw SSE text; resolves when the server ends
// the stream. onFirst() runs when the first data line arrives.
async function streamText(base, body, onFirst = () => {}) {
  const r = await fetch(`${base}/v1/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  let text = '';
  let first = true;
  const dec = new TextDecoder();
  for await (const part of r.body) {
    text += dec.decode(part, { stream: true });
    if (first && text.includes('data: ')) {
      first = false;
      onFirst();
    }
  }
  const events = text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
  const done = events.at(-1) === '[DONE]';
  const parsed = events.filter((e) => e !== '[DONE]').map((e) => JSON.parse(e));
  const out = parsed.filter((e) => e.choices).map((e) => e.choices[0].text).join('');
  const error = parsed.find((e) => e.error)?.error ?? null;
  const finish = parsed.map((e) => e.choices?.[0]?.finish_reason).find((f) => f) ?? null;
  return { status: r.status, out, error, finish, done };
}

const healthy = { prompt: [1, 2, 3, 4, 5], max_tokens: 200, temperature: 0, ignore_eos: true };

test('a forward error or NaN logits fail only their own request', async () => {
  const srv = await startWithFault('forward_fail_token=7,nan_logits_token=9', ['--parallel', '4']);
  try {
    const lone = await postRaw(srv.base, '/v1/completions', JSON.stringify(healthy));
    assert.equal(lone.status, 200, lone.text);
    // the faulty requests join the healthy one's batch while it decodes
    let faulty;
    const started = new Promise((r) => (faulty = r));
    const good = streamText(srv.base, healthy, () => faulty());
    await started;
    const [fwd, nan, nanStream, g] = await Promise.all([
      postRaw(srv.base, '/v1/completions', JSON.stringify({ prompt: [7, 1, 2], max_tokens: 5 })),
      postRaw(srv.base, '/v1/completions', JSON.stringify({ prompt: [9, 1, 2], max_tokens: 5 })),
      streamText(srv.base, { prompt: [9, 3], max_tokens: 5 }),
      good,
    ]);
    assert.equal(fwd.status, 500, fwd.text);
    assert.match(fwd.json.error.message, /generation failed: injected fault: forward_fail_token=7/);
    assert.equal(fwd.json.error.type, 'server_error');
    assert.equal(nan.status, 500, nan.text);
    assert.match(nan.json.error.message, /non-finite logits/);
    assert.equal(nanStream.status, 200);
    assert.match(nanStream.error.message, /non-finite logits/);
    assert.ok(nanStream.done, 'the failed stream still ends with [DONE]');
    // the healthy request is untouched: same text as alone, full length
    assert.equal(g.error, null);
    assert.equal(g.finish, 'length');
    assert.equal(g.out, lone.json.choices[0].text);
    // Whether the faulty requests shared a step with the healthy one depends
    // on timing; the isolation asserted above must hold either way.
    const batched = /retrying them one by one/.test(srv.log());
    console.log(`# faulty requests ${batched ? 'shared' : 'did not share'} a batch this run`);
    const m = await waitIdle(srv.base);
    assert.equal(m['spindle_requests_finished_total{reason="error"}'], 3);
    const again = await postRaw(srv.base, '/v1/completions', JSON.stringify(healthy));
    assert.equal(again.status, 200);
    assert.equal(again.json.choices[0].text, lone.json.choices[0].text);
  } finally {
    await srv.stop();
  }
});

test('a bad SPINDLE_TEST_FAULT stops the server from starting', async () => {
  await assert.rejects(startWithFault('engine_die_after_steps=zero', []), /SPINDLE_TEST_FAULT/);
});

test('a dead engine thread: /health 503, requests fail, the process exits non-zero', async () => {
  const srv = await startWithFault('engine_die_after_steps=20', []);
  const exited = new Promise((resolve) => {
    if (srv.proc.exitCode !== null) resolve({ code: srv.proc.exitCode, sig: null });
    srv.proc.on('exit', (code, sig) => resolve({ code, sig }));
  });
  try {
    const m0 = await metrics(srv.base);
    assert.equal(m0.spindle_engine_steps_total, 0);
    // in flight when the engine dies at step 20: must end, with an error
    const inflight = streamText(srv.base, healthy);
    let health503 = null;
    let tDeath = null;
    const poll = (async () => {
      for (let i = 0; i < 400 && health503 === null; i++) {
        const r = await fetch(`${srv.base}/health`).catch(() => null);
        if (r && r.status === 503) {
          health503 = await r.json();
          tDeath = Date.now();
        } else if (!r) {
          break; // already gone
        }
        await sleep(20);
      }
    })();
    const s = await inflight;
    await poll;
    assert.equal(s.status, 200);
    assert.match(s.error?.message ?? '', /the engine thread died/, JSON.stringify(s));
    assert.ok(s.done);
    assert.deepEqual(health503, { status: 'stopped' });
    const timer = setTimeout(() => srv.proc.kill('SIGKILL'), 10000);
    const { code, sig } = await exited;
    clearTimeout(timer);
    const ms = Date.now() - tDeath;
    console.log(`# engine death: /health 503, process exited ${code} ${ms} ms after`);
    assert.equal(sig, null, `killed by ${sig} (it hung):\n${srv.log().slice(-3000)}`);
    assert.notEqual(code, 0, 'a dead engine must end the process with a non-zero status');
    assert.ok(ms < 5000, `exited ${ms} ms after /health turned 503`);
    assert.match(srv.log(), /the engine thread died: injected fault: engine_die_after_steps=20/);
    assert.doesNotMatch(srv.log(), SANITIZER, srv.log().slice(-8000));
  } finally {
    if (srv.proc.exitCode === null) srv.proc.kill('SIGKILL');
  }
});

test('a hung engine thread: the watchdog turns /health 503 and the process exits 4', async () => {
  // the engine sleeps forever inside the step after its 10th forward; with
  // --watchdog 1 that step is over the limit one second later
  const srv = await startWithFault('engine_hang_after_steps=10', ['--watchdog', '1']);
  const exited = new Promise((resolve) => {
    if (srv.proc.exitCode !== null) resolve({ code: srv.proc.exitCode, sig: null });
    srv.proc.on('exit', (code, sig) => resolve({ code, sig }));
  });
  try {
    // idle for longer than the watchdog: no work is no hang
    await sleep(1500);
    const idle = await fetch(`${srv.base}/health`);
    assert.equal(idle.status, 200);
    const tStart = Date.now();
    // this request never finishes: the engine hangs under it
    const inflight = streamText(srv.base, healthy).catch((e) => ({ error: e }));
    let health503 = null;
    let tHung = null;
    for (let i = 0; i < 500 && health503 === null; i++) {
      const r = await fetch(`${srv.base}/health`).catch(() => null);
      if (!r) break; // already gone
      if (r.status === 503) {
        health503 = await r.json();
        tHung = Date.now();
      }
      await sleep(20);
    }
    assert.ok(health503, `/health never turned 503:\n${srv.log().slice(-3000)}`);
    assert.equal(health503.status, 'hung');
    assert.match(health503.error,
      /the engine thread hangs: step \d+ has run for \d+ s, longer than --watchdog 1 s/);
    const timer = setTimeout(() => srv.proc.kill('SIGKILL'), 10000);
    const { code, sig } = await exited;
    clearTimeout(timer);
    await inflight;
    const ms = Date.now() - tHung;
    console.log(`# hung engine: /health 503 ${tHung - tStart} ms after the request, ` +
      `process exited ${code} ${ms} ms later`);
    assert.equal(sig, null, `killed by ${sig} (it did not exit by itself):\n${srv.log().slice(-3000)}`);
    assert.equal(code, 4, srv.log().slice(-3000));
    assert.ok(ms < 5000, `exited ${ms} ms after /health turned 503`);
    assert.match(srv.log(), /injected fault: engine_hang_after_steps=10: the engine thread hangs now/);
    assert.match(srv.log(), /the engine thread hangs: .*exiting in 1 s/);
    assert.doesNotMatch(srv.log(), SANITIZER, srv.log().slice(-8000));
  } finally {
    if (srv.proc.exitCode === null) srv.proc.kill('SIGKILL');
  }
});
