// SIGTERM: stop accepting, cancel what does not finish within --grace, and
// exit 0; the in-flight client gets a complete HTTP answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, postRaw, metrics } from './helpers.mjs';

test('SIGTERM with a request in flight exits 0 within the grace period', async () => {
  const srv = await startServer(['--ctx-size', '2048', '--grace', '1']);
  const inflight = postRaw(srv.base, '/v1/completions',
    JSON.stringify({ prompt: 'Once upon a time', max_tokens: 2000, ignore_eos: true }));
  // SIGTERM only once the server holds the request (a fixed delay raced
  // with slow sanitizer builds: the request could arrive after shutdown began)
  for (let t = 0; t < 10000; t += 50) {
    const m = await metrics(srv.base);
    if (m.spindle_requests_running + m.spindle_requests_waiting >= 1) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const t0 = Date.now();
  await srv.stop(); // asserts exit status 0
  assert.ok(Date.now() - t0 < 10000, 'stopped within the grace period (plus slack)');
  const r = await inflight;
  assert.ok(r.status === 200 || r.status === 503, `status ${r.status}: ${r.text}`);
  if (r.status === 503) assert.ok(r.json.error.message.length > 0);
});
