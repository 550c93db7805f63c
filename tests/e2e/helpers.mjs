// Starts and stops a real `spindle serve` for the e2e tests.
//   SPINDLE_BIN    the spindle binary (required)
//   SPINDLE_MODEL  the model path (required; run.sh builds a fixture model)
//   SPINDLE_ARGS   extra serve arguments for every server (optional)
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import OpenAI from 'openai';

export const BIN = process.env.SPINDLE_BIN;
export const MODEL = process.env.SPINDLE_MODEL;
if (!BIN || !MODEL) throw new Error('set SPINDLE_BIN and SPINDLE_MODEL (see tests/e2e/run.sh)');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Server-side reports that fail a test even when every request succeeded.
const SANITIZER = /WARNING: ThreadSanitizer|ERROR: AddressSanitizer|runtime error:|LeakSanitizer/;

export async function startServer(args = []) {
  const extra = (process.env.SPINDLE_ARGS || '').split(' ').filter(Boolean);
  const argv = ['serve', '--model', MODEL, '--port', '0', '--threads', '1', ...extra, ...args];
  const proc = spawn(BIN, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => (log += d));
  proc.stderr.on('data', (d) => (log += d));
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve({ code, sig })));
  let port = null;
  for (let i = 0; i < 600 && port === null; i++) {
    const m = /listening on http:\/\/[^:]+:(\d+)/.exec(log);
    if (m) port = Number(m[1]);
    else if (proc.exitCode !== null) break;
    else await sleep(50);
  }
  if (port === null) {
    proc.kill('SIGKILL');
    throw new Error(`spindle serve did not start:\n${log}`);
  }
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const r = await fetch(`${base}/health`).catch(() => null);
    if (r && r.status === 200) break;
    if (proc.exitCode !== null || i > 1200) {
      proc.kill('SIGKILL');
      throw new Error(`spindle serve never became healthy:\n${log}`);
    }
    await sleep(50);
  }
  return {
    proc,
    port,
    base,
    log: () => log,
    client: (opts = {}) =>
      new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0, ...opts }),
    // SIGTERM, then the process must exit 0 with no sanitizer report.
    async stop() {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 30000);
      const { code, sig } = await exited;
      clearTimeout(timer);
      // SPINDLE_E2E_LOG=FILE keeps every server's log (appended)
      if (process.env.SPINDLE_E2E_LOG) fs.appendFileSync(process.env.SPINDLE_E2E_LOG, log);
      assert.equal(sig, null, `server killed by ${sig}:\n${log.slice(-4000)}`);
      assert.equal(code, 0, `server exit status ${code}:\n${log.slice(-4000)}`);
      assert.doesNotMatch(log, SANITIZER, `sanitizer report:\n${log.slice(-8000)}`);
    },
  };
}

export async function metrics(base, headers = {}) {
  const text = await (await fetch(`${base}/metrics`, { headers })).text();
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^(spindle_[a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+)$/.exec(line);
    if (m) out[m[1] + (m[2] || '')] = Number(m[3]);
  }
  return out;
}

// Waits until no sequence runs and every KV block is free.
export async function waitIdle(base, ms = 10000, headers = {}) {
  let m;
  for (let t = 0; t < ms; t += 50) {
    m = await metrics(base, headers);
    if (m.spindle_requests_running === 0 && m.spindle_kv_blocks_used === 0) return m;
    await sleep(50);
  }
  assert.fail(`server not idle: ${JSON.stringify(m)}`);
}

export async function postRaw(base, path, body, headers = {}) {
  const r = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body,
  });
  let json = null;
  const text = await r.text();
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: r.status, headers: r.headers, json, text };
}

export function assertErrorBody(res, status, re) {
  assert.equal(res.status, status, `status ${res.status}: ${res.text}`);
  assert.ok(res.json && res.json.error, `no error body: ${res.text}`);
  const e = res.json.error;
  assert.equal(typeof e.message, 'string');
  assert.ok('type' in e && 'param' in e && 'code' in e, `error fields: ${res.text}`);
  if (re) assert.match(e.message, re);
}

export async function collectChatStream(stream) {
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta && c.delta.content) text += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, finish, usage };
}

export async function collectCompletionStream(stream) {
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.text || '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, finish, usage };
}
