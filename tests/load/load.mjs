// Bounded load test: a real `spindle serve` on loopback, LOAD_REQUESTS mixed
// requests from LOAD_CLIENTS concurrent clients, LOAD_CANCEL of them streams
// that the client aborts mid-way. Stops by itself and exits non-zero when:
//   - any request fails other than the expected 4xx of the bad ones, or 503
//     (queue full);
//   - a stream neither completes ([DONE] with a finish_reason) nor was
//     cancelled by its client;
//   - /metrics does not come back to idle (kv_blocks_used 0, running 0,
//     waiting 0), or the engine counted a request as failed;
//   - the server's RSS (VmRSS) grew by more than LOAD_RSS_MB between the end
//     of the warm-up and the end of the run;
//   - the server does not exit 0 on SIGTERM, or prints a sanitizer report
//     (a LeakSanitizer report included, when built with -DSP_SANITIZE=address).
// Run it through tests/load/run.sh, which builds the model and sets the
// environment (SPINDLE_BIN, SPINDLE_MODEL).
import fs from 'node:fs';
import { startServer, metrics, waitIdle, postRaw } from '../e2e/helpers.mjs';

const N = Number(process.env.LOAD_REQUESTS || 2000);
const CLIENTS = Number(process.env.LOAD_CLIENTS || 32);
const CANCEL = Number(process.env.LOAD_CANCEL || 0.1);
const WARMUP = Math.min(100, Math.floor(N / 10));
const RSS_MB = Number(process.env.LOAD_RSS_MB || 32);
const SEED = Number(process.env.LOAD_SEED || 1);

// mulberry32: a reproducible request mix for a given LOAD_SEED
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
const rand = rng(SEED);
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

const WORDS = ['Once', 'upon', 'a', 'time', 'there', 'was', 'a', 'little', 'girl', 'who',
  'liked', 'to', 'play', 'in', 'the', 'park', 'with', 'her', 'dog'];
const sentence = (n) => Array.from({ length: n }, () => pick(WORDS)).join(' ');

// Bad requests and the status each must get.
const BAD = [
  { path: '/v1/chat/completions', body: '{"messages": [', status: 400 },
  { path: '/v1/chat/completions', body: '{"messages": [{"role": "user", "content": "hi"}], "n": 17}', status: 400 },
  { path: '/v1/completions', body: JSON.stringify({ prompt: 'x '.repeat(400), max_tokens: 4 }), status: 400 },
  { path: '/v1/completions', body: '{"prompt": "a\\u0000b"}', status: 400 },
  { path: '/v1/nothing', body: '{}', status: 404 },
  { path: '/v1/completions', body: '['.repeat(5000), status: 400 },
];

// One request of the mix, decided up front so the run is reproducible.
function plan(i) {
  const r = rand();
  const max_tokens = int(1, 24);
  const common = { model: 'any', max_tokens, temperature: pick([0, 0.7, 1]), seed: int(0, 1e6) };
  if (rand() < 0.2) common.stop = [pick(WORDS)];
  if (r < CANCEL) {
    // aborted after a few chunks: needs room to stream
    return { kind: 'cancel', chat: rand() < 0.5, body: { ...common, max_tokens: int(20, 60),
      ignore_eos: true }, after: int(1, 4), prompt: sentence(int(2, 30)) };
  }
  if (r < 0.45) return { kind: 'chat', stream: rand() < 0.5, body: common, prompt: sentence(int(2, 40)) };
  if (r < 0.75) return { kind: 'completion', stream: rand() < 0.5, body: common, prompt: sentence(int(1, 40)) };
  if (r < 0.87) return { kind: 'models' };
  if (r < 0.92) return { kind: 'tokenize', prompt: sentence(int(1, 20)) };
  return { kind: 'bad', bad: BAD[i % BAD.length] };
}

const stats = { ok: 0, busy: 0, bad_ok: 0, cancelled: 0, streams_done: 0, failures: [] };
const fail = (p, why) => {
  if (stats.failures.length < 20) stats.failures.push(`${p.kind}: ${why}`);
  else stats.failures.length++;
};

function chatBody(p) {
  return { ...p.body, messages: [{ role: 'user', content: p.prompt }] };
}

async function runGen(client, p) {
  const chat = p.kind === 'chat' || (p.kind === 'cancel' && p.chat);
  const api = chat ? client.chat.completions : client.completions;
  const body = chat ? chatBody(p) : { ...p.body, prompt: p.prompt };
  const stream = p.stream || p.kind === 'cancel';
  if (!stream) {
    const r = await api.create(body);
    const c = r.choices[0];
    if (!['stop', 'length'].includes(c.finish_reason)) return fail(p, `finish ${c.finish_reason}`);
    if (r.usage.completion_tokens > body.max_tokens) return fail(p, 'too many tokens');
    stats.ok++;
    return;
  }
  const ac = new AbortController();
  const s = await api.create({ ...body, stream: true, stream_options: { include_usage: true } },
    { signal: ac.signal });
  let chunks = 0;
  let finish = null;
  let usage = null;
  try {
    for await (const chunk of s) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) if (c.finish_reason) finish = c.finish_reason;
      if (p.kind === 'cancel' && ++chunks >= p.after) {
        ac.abort();
        break;
      }
    }
  } catch (e) {
    if (!ac.signal.aborted) throw e;
  }
  if (ac.signal.aborted) {
    stats.cancelled++;
    return;
  }
  // the stream ended on its own (a cancel whose stream finished first too)
  if (!['stop', 'length'].includes(finish)) return fail(p, `stream ended without finish (${finish})`);
  if (!usage) return fail(p, 'stream without usage');
  stats.streams_done++;
  stats.ok++;
}

async function runOne(srv, client, p) {
  try {
    if (p.kind === 'models') {
      const r = await client.models.list();
      if (r.data.length !== 1) return fail(p, 'models list');
      stats.ok++;
    } else if (p.kind === 'tokenize') {
      const r = await postRaw(srv.base, '/tokenize', JSON.stringify({ content: p.prompt }));
      if (r.status !== 200 || !r.json.tokens.length) return fail(p, `tokenize ${r.status}`);
      stats.ok++;
    } else if (p.kind === 'bad') {
      const r = await postRaw(srv.base, p.bad.path, p.bad.body);
      if (r.status !== p.bad.status || !r.json?.error) return fail(p, `${p.bad.path} -> ${r.status} ${r.text.slice(0, 200)}`);
      stats.bad_ok++;
    } else {
      await runGen(client, p);
    }
  } catch (e) {
    if (e?.status === 503) stats.busy++;
    else fail(p, `${e?.status ?? ''} ${e?.message ?? e}`);
  }
}

function vmRssKb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

async function drive(srv, client, plans) {
  let next = 0;
  const worker = async () => {
    while (next < plans.length) await runOne(srv, client, plans[next++]);
  };
  await Promise.all(Array.from({ length: CLIENTS }, worker));
}

async function main() {
  const plans = Array.from({ length: N }, (_, i) => plan(i));
  const srv = await startServer(['--parallel', '4', '--queue', '64']);
  const client = srv.client({ timeout: 120000 });
  let m;
  let rss0;
  let rss1;
  const t0 = Date.now();
  let t1;
  let t2;
  try {
    await drive(srv, client, plans.slice(0, WARMUP));
    await waitIdle(srv.base, 30000);
    rss0 = vmRssKb(srv.proc.pid);
    t1 = Date.now();
    await drive(srv, client, plans.slice(WARMUP));
    m = await waitIdle(srv.base, 30000).catch((e) => {
      fail({ kind: 'metrics' }, e.message);
      return null;
    });
    rss1 = vmRssKb(srv.proc.pid);
    t2 = Date.now();
  } finally {
    await srv.stop().catch((e) => fail({ kind: 'shutdown' }, e.message.slice(0, 4000)));
  }
  if (m) {
    const err = m['spindle_requests_finished_total{reason="error"}'];
    if (err !== 0) fail({ kind: 'metrics' }, `${err} requests finished with an engine error`);
    if (m.spindle_requests_waiting !== 0) fail({ kind: 'metrics' }, 'requests still waiting');
    const http5xx = m['spindle_http_responses_total{code="5xx"}'];
    if (http5xx !== stats.busy) fail({ kind: 'metrics' }, `${http5xx} 5xx answers, ${stats.busy} were 503s`);
  }
  const grownMb = (rss1 - rss0) / 1024;
  if (!(grownMb < RSS_MB)) fail({ kind: 'rss' }, `RSS grew by ${grownMb.toFixed(1)} MB (bound ${RSS_MB} MB)`);
  const summary = {
    requests: N, clients: CLIENTS, seconds: +((Date.now() - t0) / 1000).toFixed(1),
    req_per_s: +((N - WARMUP) / ((t2 - t1) / 1000)).toFixed(1),
    ok: stats.ok, streams_completed: stats.streams_done, cancelled_by_client: stats.cancelled,
    bad_answered_as_expected: stats.bad_ok, busy_503: stats.busy,
    generated_tokens: m ? m.spindle_generation_tokens_total : null,
    engine_cancelled: m ? m['spindle_requests_finished_total{reason="cancelled"}'] : null,
    kv_blocks_used: m ? m.spindle_kv_blocks_used : null, running: m ? m.spindle_requests_running : null,
    rss_kb_after_warmup: rss0, rss_kb_end: rss1, rss_growth_mb: +grownMb.toFixed(1), rss_bound_mb: RSS_MB,
    failures: stats.failures.length,
  };
  console.log(JSON.stringify(summary, null, 1));
  if (stats.failures.length) {
    console.error(`load: ${stats.failures.length} failures:\n  ${stats.failures.filter(Boolean).join('\n  ')}`);
    process.exit(1);
  }
  console.log('load: ok');
}

await main();
