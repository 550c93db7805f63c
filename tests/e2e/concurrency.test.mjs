// The old failure, as a test: 32 requests at once from 16 clients, mixing
// chat stream, chat non-stream, completions and /v1/models. All must succeed
// with the same greedy text a lone request gets. Run the server binary under
// ThreadSanitizer too: startServer().stop() fails on any sanitizer report.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, waitIdle, metrics, collectChatStream, collectCompletionStream,
} from './helpers.mjs';

let srv;
before(async () => {
  srv = await startServer(['--ctx-size', '1024', '--parallel', '8', '--queue', '64']);
});
after(async () => {
  if (srv) await srv.stop();
});

const PROMPTS = [
  'Once upon a time',
  'The cat sat on the mat and the dog ran to the tree.',
  'Hello world',
  'Lily liked to play outside in the sun with her friends. One day, she saw a big red ball.',
];
const MAX = 20;

function chatReq(i) {
  return { model: 'm', messages: [{ role: 'user', content: PROMPTS[i % PROMPTS.length] }],
    max_tokens: MAX, temperature: 0 };
}
function complReq(i) {
  return { model: 'm', prompt: PROMPTS[i % PROMPTS.length], max_tokens: MAX, temperature: 0 };
}

// kind of request k of client c
const KINDS = ['chat-stream', 'chat', 'completion', 'models', 'completion-stream'];

async function run(client, kind, i) {
  switch (kind) {
    case 'chat-stream':
      return (await collectChatStream(
        await client.chat.completions.create({ ...chatReq(i), stream: true }))).text;
    case 'chat':
      return (await client.chat.completions.create(chatReq(i))).choices[0].message.content;
    case 'completion':
      return (await client.completions.create(complReq(i))).choices[0].text;
    case 'completion-stream':
      return (await collectCompletionStream(
        await client.completions.create({ ...complReq(i), stream: true }))).text;
    default:
      return (await client.models.list()).data[0].id;
  }
}

test('32 concurrent mixed requests from 16 clients match lone requests', async () => {
  const lone = srv.client();
  const want = { chat: [], completion: [] };
  for (let i = 0; i < PROMPTS.length; i++) {
    want.chat.push(await run(lone, 'chat', i));
    want.completion.push(await run(lone, 'completion', i));
  }
  const modelId = await run(lone, 'models', 0);

  const fiveXX = 'spindle_http_responses_total{code="5xx"}'; // /health said 503 while loading
  const before = await metrics(srv.base);
  const clients = Array.from({ length: 16 }, () => srv.client());
  const jobs = [];
  for (let c = 0; c < 16; c++)
    for (let k = 0; k < 2; k++) {
      const n = c * 2 + k;
      const kind = KINDS[n % KINDS.length];
      jobs.push(run(clients[c], kind, n).then((text) => ({ kind, n, text })));
    }
  const results = await Promise.all(jobs);
  assert.equal(results.length, 32);
  for (const r of results) {
    const i = r.n % PROMPTS.length;
    if (r.kind === 'models') assert.equal(r.text, modelId);
    else if (r.kind.startsWith('chat')) assert.equal(r.text, want.chat[i], `${r.kind} #${r.n}`);
    else assert.equal(r.text, want.completion[i], `${r.kind} #${r.n}`);
  }
  const m = await waitIdle(srv.base);
  assert.equal(m.spindle_kv_blocks_free, m.spindle_kv_blocks_total);
  assert.equal(m[fiveXX], before[fiveXX]);
  assert.equal(m['spindle_requests_finished_total{reason="error"}'], 0);
});
