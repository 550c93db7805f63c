// Greedy ids against an independent oracle: the fixture's reference.json
// (transformers, float32) when the served model is an HF fixture with one,
// alone, batched with other requests, and again served from the prefix cache.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, MODEL } from './helpers.mjs';

const refPath = process.env.SPINDLE_REFERENCE ||
  path.join(process.env.SPINDLE_FIXTURE || '', 'reference.json');
const ref = fs.existsSync(refPath) ? JSON.parse(fs.readFileSync(refPath, 'utf8')) : null;
if (!ref) console.log(`# reference.test: no reference.json for ${MODEL} (set SPINDLE_FIXTURE): ` +
  'not run');

let srv;
before(async () => {
  if (ref) srv = await startServer(['--precision', 'f32', '--parallel', '4', '--block-size', '8']);
});
after(async () => {
  if (srv) await srv.stop();
});

async function greedyIds(prompt, n) {
  const r = await fetch(`${srv.base}/v1/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt, max_tokens: n, temperature: 0, ignore_eos: true, logprobs: 0,
      return_tokens_as_token_ids: true }),
  });
  const j = await r.json();
  assert.equal(r.status, 200, JSON.stringify(j));
  return j.choices[0].logprobs.tokens.map((t) => Number(t.replace('token_id:', '')));
}

test('greedy ids match the transformers reference', { skip: !ref && 'no reference' }, async () => {
  const n = ref.greedy_ids.length;
  assert.deepEqual(await greedyIds(ref.prompt_ids, n), ref.greedy_ids);
  // batched with other sequences of other lengths, and with prefix-cache hits
  const others = [ref.prompt_ids.slice(0, 7), ref.prompt_ids.slice(3), [5, 6, 7]];
  const all = await Promise.all([
    greedyIds(ref.prompt_ids, n), ...others.map((p) => greedyIds(p, n)), greedyIds(ref.prompt_ids, n),
  ]);
  assert.deepEqual(all[0], ref.greedy_ids);
  assert.deepEqual(all[all.length - 1], ref.greedy_ids);
  const m = await (await fetch(`${srv.base}/metrics`)).text();
  assert.match(m, /spindle_prefix_cache_hit_tokens_total [1-9]/);
});
