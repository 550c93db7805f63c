// Serving benchmark: time to first token and generation throughput for 1, 4
// and 16 concurrent streams against `spindle serve` (or any OpenAI-compatible
// server). Not a test: prints a table.
//
//   node bench/bench_serve.mjs --bin build/release/spindle --model M [--threads N]
//   node bench/bench_serve.mjs --url http://127.0.0.1:8000
// Options: --streams 1,4,16  --max-tokens 128  --prompt TEXT  --rounds 2
import { spawn } from 'node:child_process';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1] && !all[i + 1].startsWith('--') ? all[i + 1] : '1']);
    return acc;
  }, []),
);
const streams = (args.streams || '1,4,16').split(',').map(Number);
const maxTokens = Number(args['max-tokens'] || 128);
const rounds = Number(args.rounds || 2);
const prompt = args.prompt || 'Once upon a time, there was a little girl named Lily. She';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startServer() {
  const argv = ['serve', '--model', args.model, '--port', '0',
    '--parallel', String(Math.max(...streams)), '--log-level', 'warn'];
  if (args.threads) argv.push('--threads', args.threads);
  if (args['ctx-size']) argv.push('--ctx-size', args['ctx-size']);
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

// One streamed completion: returns ttft (ms), tokens, and end time.
async function oneStream(url, t0) {
  const r = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true,
      stream: true, stream_options: { include_usage: true } }),
  });
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

async function measure(url, n) {
  const t0 = performance.now();
  const res = await Promise.all(Array.from({ length: n }, () => oneStream(url, t0)));
  const wall = (Math.max(...res.map((r) => r.end)) - t0) / 1000;
  const tokens = res.reduce((a, r) => a + r.tokens, 0);
  const ttfts = res.map((r) => r.ttft).sort((a, b) => a - b);
  return { n, wall, tokens, tps: tokens / wall, ttftMed: ttfts[Math.floor(ttfts.length / 2)],
    ttftMax: ttfts[ttfts.length - 1] };
}

const server = args.url ? { url: args.url } : await startServer();
try {
  await measure(server.url, 1); // warm-up
  console.log(`max_tokens=${maxTokens}, best of ${rounds} rounds`);
  console.log('streams  ttft_med_ms  ttft_max_ms  tokens/s(aggregate)  tokens/s(per stream)');
  let base = null;
  for (const n of streams) {
    let best = null;
    for (let r = 0; r < rounds; r++) {
      const m = await measure(server.url, n);
      if (!best || m.tps > best.tps) best = m;
    }
    base = base ?? best.tps;
    console.log(`${String(n).padStart(7)}  ${best.ttftMed.toFixed(1).padStart(11)}  ` +
      `${best.ttftMax.toFixed(1).padStart(11)}  ${best.tps.toFixed(1).padStart(19)}  ` +
      `${(best.tps / n).toFixed(1).padStart(20)}   (${(best.tps / base).toFixed(2)}x)`);
  }
} finally {
  if (server.proc) server.proc.kill('SIGTERM');
}
