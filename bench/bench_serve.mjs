// Serving benchmark: time to first token and generation throughput for 1, 4
// and 16 concurrent streams against `spindle serve` (or any OpenAI-compatible
// server). Not a test: prints a table (and JSON lines with --json).
//
//   node bench/bench_serve.mjs --bin build/release/spindle --model M [--threads 2]
//   node bench/bench_serve.mjs --url http://127.0.0.1:8000
// Options:
//   --streams 1,4,16   concurrent streams per measurement
//   --max-tokens 128   tokens each stream generates (ignore_eos: exactly this many)
//   --prompt-tokens N  prompt of N token ids on /v1/completions (default 32): no
//                      tokenizer needed; each stream of each round gets different
//                      ids, so the prefix cache does not share prompts
//   --prompt TEXT      a text prompt instead (the same for every stream)
//   --rounds 5         measurements per stream count; medians are reported
//   --ctx-size 512     serve's --ctx-size (KV pool = parallel x ctx-size)
//   --json             also print one JSON object per stream count
// A measurement starts all streams at once; tokens/s (aggregate) = all
// completion tokens / time until the last stream ended; TTFT is per stream,
// from the start to its first chunk. When the benchmark starts the server
// it also reports tokens per CPU-second of the server process (Linux
// /proc/PID/stat): on a shared machine that figure depends far less on
// what else runs than wall-clock tokens/s does.
import { spawn } from 'node:child_process';
import fs from 'node:fs';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1] && !all[i + 1].startsWith('--') ? all[i + 1] : '1']);
    return acc;
  }, []),
);
const streams = (args.streams || '1,4,16').split(',').map(Number);
const maxTokens = Number(args['max-tokens'] || 128);
const rounds = Number(args.rounds || 5);
const promptTokens = Number(args['prompt-tokens'] || 32);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function startServer() {
  const argv = ['serve', '--model', args.model, '--port', '0',
    '--parallel', String(Math.max(...streams)), '--ctx-size', args['ctx-size'] || '512',
    '--log-level', 'warn'];
  if (args.threads) argv.push('--threads', args.threads);
  // warn level hides the "listening" line: ask the OS for a free port first
  const net = await import('node:net');
  const port = await new Promise((res) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
  argv[argv.indexOf('--port') + 1] = String(port);
  const proc = spawn(args.bin, argv, { stdio: ['ignore', 'inherit', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 2400; i++) {
    const r = await fetch(`${url}/health`).catch(() => null);
    if (r && r.status === 200) return { proc, url };
    if (proc.exitCode !== null) throw new Error('server exited');
    await sleep(50);
  }
  throw new Error('server did not become ready');
}

let promptSerial = 0;
// A prompt no earlier request shared: token ids from a counter (ids 300+,
// past the byte and special tokens of a SentencePiece-style vocabulary).
function nextPrompt() {
  if (args.prompt) return args.prompt;
  const k = promptSerial++;
  return Array.from({ length: promptTokens }, (_, i) => 300 + ((k * 7919 + i * 104729) % 20000));
}

// One streamed completion: returns ttft (ms), tokens, and end time.
async function oneStream(url, t0) {
  const r = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt: nextPrompt(), max_tokens: maxTokens, temperature: 0,
      ignore_eos: true, stream: true, stream_options: { include_usage: true } }),
  });
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '', ttft = null, tokens = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let k;
    while ((k = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const j = JSON.parse(ev.slice(6));
      if (j.choices?.length && ttft === null) ttft = performance.now() - t0;
      if (j.usage) tokens = j.usage.completion_tokens;
    }
  }
  return { ttft, tokens, end: performance.now() };
}

// CPU seconds (user + system) the server process has used; null if unknown.
function serverCpu(proc) {
  try {
    const f = fs.readFileSync(`/proc/${proc.pid}/stat`, 'utf8');
    const v = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(v[11]) + Number(v[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return null;
  }
}

async function measure(server, n) {
  const c0 = server.proc ? serverCpu(server.proc) : null;
  const t0 = performance.now();
  const res = await Promise.all(Array.from({ length: n }, () => oneStream(server.url, t0)));
  const wall = (Math.max(...res.map((r) => r.end)) - t0) / 1000;
  const c1 = server.proc ? serverCpu(server.proc) : null;
  const tokens = res.reduce((a, r) => a + r.tokens, 0);
  return { wall, tokens, tps: tokens / wall, ttftMed: median(res.map((r) => r.ttft)),
    ttftMax: Math.max(...res.map((r) => r.ttft)),
    tpc: c0 !== null && c1 > c0 ? tokens / (c1 - c0) : null };
}

const server = args.url ? { url: args.url } : await startServer();
try {
  await measure(server, 1); // warm-up: every weight read once
  console.log(`max_tokens=${maxTokens}, prompt ${args.prompt ? 'text' : promptTokens + ' ids'}, ` +
    `median of ${rounds} rounds (min..max)`);
  console.log('streams  ttft_med_ms  ttft_max_ms  tokens/s(aggregate)        per stream  vs 1 stream' +
    '  tokens/CPU-s  vs 1 stream');
  let base = null;
  for (const n of streams) {
    const ms = [];
    for (let r = 0; r < rounds; r++) ms.push(await measure(server, n));
    const tps = ms.map((m) => m.tps);
    const row = { streams: n, rounds, max_tokens: maxTokens, tps_median: median(tps),
      tps_min: Math.min(...tps), tps_max: Math.max(...tps),
      ttft_med_ms: median(ms.map((m) => m.ttftMed)), ttft_max_ms: median(ms.map((m) => m.ttftMax)),
      tokens: ms[0].tokens };
    if (ms.every((m) => m.tpc !== null)) row.tpc_median = median(ms.map((m) => m.tpc));
    base = base ?? row;
    row.ratio = row.tps_median / base.tps_median;
    if (row.tpc_median) row.cpu_ratio = row.tpc_median / base.tpc_median;
    console.log(`${String(n).padStart(7)}  ${row.ttft_med_ms.toFixed(1).padStart(11)}  ` +
      `${row.ttft_max_ms.toFixed(1).padStart(11)}  ` +
      `${row.tps_median.toFixed(1).padStart(8)} (${row.tps_min.toFixed(1)}..${row.tps_max.toFixed(1)})`.padEnd(30) +
      `${(row.tps_median / n).toFixed(1).padStart(9)}  ${row.ratio.toFixed(2).padStart(10)}x` +
      (row.tpc_median ? `  ${row.tpc_median.toFixed(1).padStart(12)}  ${row.cpu_ratio.toFixed(2).padStart(10)}x` : ''));
    if (args.json) console.log(JSON.stringify(row));
  }
} finally {
  if (server.proc) server.proc.kill('SIGTERM');
}
