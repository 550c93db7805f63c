// OpenAI Responses (/v1/responses) with the official openai client's
// responses.create / responses.stream. Same model and test hook as
// tools.test.mjs: prompts are checked token for token against the
// chat-completions path and transformers' render of a tool round trip.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MODEL, startServer, postRaw } from './helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const shared = process.env.SPINDLE_FIXTURE
  ? path.resolve(process.env.SPINDLE_FIXTURE, '../..')
  : process.env.SP_SHARED_DIR || path.resolve(repo, '../shared');
const tokRoot = process.env.SP_TOKENIZERS_DIR || path.join(repo, 'build/tokenizers');
const toolsModel = path.join(process.env.SPINDLE_FIXTURE ? path.dirname(path.resolve(MODEL)) : path.join(repo, 'build'),
  'e2e-tools-model');

const fixture = JSON.parse(fs.readFileSync(path.join(shared, 'fixtures/tokenizers/qwen3.json'), 'utf8'));
const toolCase = fixture.chat.find((c) => c.name === 'tool_result' && c.add_generation_prompt);
const TOOLS = toolCase.tools.map((t) => ({ type: 'function', ...t.function }));
const USER = toolCase.messages[0];
const TOOL_CONTENT = toolCase.messages[2].content;
const CALL_TEXT = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Tokyo"}}\n</tool_call>';

let srv;
let client;

before(async () => {
  if (!fs.existsSync(path.join(tokRoot, 'qwen3/tokenizer.json')))
    execFileSync('bash', [path.join(repo, 'scripts/fetch-tokenizers.sh'), tokRoot], { stdio: 'inherit' });
  execFileSync('node', [path.join(here, 'make_tools_model.mjs'), path.join(shared, 'fixtures/qwen3'),
    path.join(tokRoot, 'qwen3'), toolsModel], { stdio: 'inherit' });
  process.env.SPINDLE_TEST_HOOKS = '1';
  try {
    srv = await startServer(['--model', toolsModel]);
  } finally {
    delete process.env.SPINDLE_TEST_HOOKS;
  }
  client = srv.client();
});

after(async () => {
  if (srv) await srv.stop();
});

async function chatIds(body) {
  const r = await postRaw(srv.base, '/tokenize', JSON.stringify(body));
  assert.equal(r.status, 200, r.text);
  return r.json.tokens;
}

test('text input: a completed response with output_text; usage as chat completions counts it', async () => {
  const r = await client.responses.create({ model: 'm', input: 'Hello!', spindle_debug_force_output: 'Hi, how can I help?' });
  assert.equal(r.object, 'response');
  assert.match(r.id, /^resp_/);
  assert.equal(r.status, 'completed');
  assert.equal(r.output_text, 'Hi, how can I help?');
  assert.equal(r.output.length, 1);
  assert.equal(r.output[0].type, 'message');
  assert.equal(r.output[0].role, 'assistant');
  assert.deepEqual(r.output[0].content.map((c) => c.type), ['output_text']);
  const chat = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'Hello!' }],
    spindle_debug_force_output: 'Hi, how can I help?' });
  assert.equal(r.usage.input_tokens, chat.usage.prompt_tokens);
  assert.equal(r.usage.output_tokens, chat.usage.completion_tokens);
  assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);
  assert.equal(r.store, false, 'nothing is stored');
});

test('instructions become the system message; message items with content parts', async () => {
  const want = await chatIds({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Weather?' }] });
  const r = await client.responses.create({ model: 'm', instructions: 'Be brief.', input: 'Weather?',
    spindle_debug_force_output: 'Sunny.' });
  assert.equal(r.usage.input_tokens, want.length);
  assert.equal(r.output_text, 'Sunny.');
  assert.equal(r.instructions, 'Be brief.');
  const items = await client.responses.create({ model: 'm', spindle_debug_force_output: 'Sunny.', input: [
    { role: 'developer', content: 'Be brief.' },
    { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Weather?' }] }] });
  assert.equal(items.usage.input_tokens, want.length);
});

test('streaming: events in order with sequence numbers; the stream helper equals the plain response', async () => {
  const body = { model: 'm', input: 'Tell me a story', max_output_tokens: 20, temperature: 0 };
  const plain = await client.responses.create(body);
  assert.equal(plain.status, 'incomplete');
  assert.equal(plain.incomplete_details.reason, 'max_output_tokens');
  const events = [];
  for await (const e of await client.responses.create({ ...body, stream: true })) events.push(e);
  const types = events.map((e) => e.type);
  const deltas = types.filter((t) => t === 'response.output_text.delta').length;
  assert.ok(deltas >= 1, types.join(' '));
  assert.deepEqual(types, ['response.created', 'response.in_progress', 'response.output_item.added',
    'response.content_part.added', ...Array(deltas).fill('response.output_text.delta'),
    'response.output_text.done', 'response.content_part.done', 'response.output_item.done',
    'response.incomplete']);
  assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
  assert.equal(events.filter((e) => e.delta).map((e) => e.delta).join(''), plain.output_text);
  assert.equal(events.at(-1).response.output[0].content[0].text, plain.output_text);
  // (output_text is the SDK's convenience on create(); a stream's final response has the items)
  const final = await client.responses.stream(body).finalResponse();
  assert.equal(final.output[0].content[0].text, plain.output_text);
  // the SDK keeps usage from response.completed only; response.incomplete carries it too
  assert.equal(events.at(-1).response.usage.output_tokens, plain.usage.output_tokens);
  assert.equal(events.at(-1).response.usage.input_tokens, plain.usage.input_tokens);
  // reasoning then text, and a completed stream
  const forced = { model: 'm', input: 'Hi', stream: true,
    spindle_debug_force_output: '<think>\nHmm.\n</think>\n\nHello.' };
  const ev2 = [];
  for await (const e of await client.responses.create(forced)) ev2.push(e);
  const done = ev2.at(-1);
  assert.equal(done.type, 'response.completed');
  assert.deepEqual(done.response.output.map((o) => o.type), ['reasoning', 'message']);
  assert.equal(done.response.output[0].content[0].text, 'Hmm.');
  assert.ok(ev2.some((e) => e.type === 'response.reasoning_text.delta'));
  const p2 = await client.responses.create({ ...forced, stream: false });
  assert.deepEqual(done.response.output.map((o) => o.type), p2.output.map((o) => o.type));
  assert.equal(p2.output_text, 'Hello.');
});

test('function call round trip: function_call item, then function_call_output, then the answer', async () => {
  const body = { model: 'm', tools: TOOLS, input: [USER] };
  const r = await client.responses.create({ ...body, spindle_debug_force_output: CALL_TEXT });
  assert.equal(r.status, 'completed');
  const call = r.output.find((o) => o.type === 'function_call');
  assert.ok(call, JSON.stringify(r.output));
  assert.match(call.call_id, /^call_/);
  assert.equal(call.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.arguments), { city: 'Tokyo' });
  // streamed: arguments arrive as deltas and add up to the same call
  const events = [];
  for await (const e of await client.responses.create({ ...body, stream: true, spindle_debug_force_output: CALL_TEXT }))
    events.push(e);
  const args = events.filter((e) => e.type === 'response.function_call_arguments.delta').map((e) => e.delta).join('');
  assert.equal(args, call.arguments);
  const argsDone = events.find((e) => e.type === 'response.function_call_arguments.done');
  assert.equal(argsDone.arguments, call.arguments);
  // the second turn: the prompt is token for token transformers' render
  const input = [USER, ...r.output, { type: 'function_call_output', call_id: call.call_id, output: TOOL_CONTENT }];
  const a = await client.responses.create({ ...body, input, spindle_debug_force_output: 'It is 21 degrees and clear.' });
  assert.equal(a.usage.input_tokens, toolCase.ids.length);
  assert.ok(a.usage.input_tokens_details.cached_tokens > 0);
  assert.equal(a.output_text, 'It is 21 degrees and clear.');
});

test('store is accepted (nothing stored); previous_response_id is a 400', async () => {
  const ok = await client.responses.create({ model: 'm', input: 'hi', store: true, max_output_tokens: 2,
    text: { format: { type: 'text' } } });
  assert.equal(ok.store, false);
  const cases = [
    [{ previous_response_id: 'resp_123' }, 'previous_response_id', /stores no responses/],
    [{ conversation: 'conv_1' }, 'conversation', /not supported/],
    [{ text: { format: { type: 'xml' } } }, 'text.format.type', /json_schema/],
    [{ input: [] }, 'input', /non-empty/],
    [{ input: [{ type: 'item_reference', id: 'msg_1' }] }, 'input[0]', /item_reference/],
    [{ input: [{ role: 'critic', content: 'x' }] }, 'input[0].role', /user/],
    [{ input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'x' }] }] }, 'input[0].content[0]', /images/],
    [{ tools: [{ type: 'web_search' }] }, 'tools[0]', /function tools/],
    [{ max_output_tokens: 0 }, 'max_output_tokens', /integer/],
    [{ tool_choice: 'sometimes' }, 'tool_choice', /tool_choice/],
  ];
  for (const [extra, param, re] of cases) {
    const res = await postRaw(srv.base, '/v1/responses', JSON.stringify({ model: 'm', input: 'hi', ...extra }));
    assert.equal(res.status, 400, `${JSON.stringify(extra)}: ${res.text}`);
    assert.equal(res.json.error.param, param, res.text);
    assert.match(res.json.error.message, re);
  }
  await assert.rejects(client.responses.create({ model: 'm', input: 'hi', previous_response_id: 'resp_1' }),
    (e) => e.status === 400 && e.param === 'previous_response_id');
});

test('text.format json_schema and json_object constrain the output (structured output)', async () => {
  const schema = {
    type: 'object',
    properties: { city: { type: 'string', maxLength: 12 }, temp: { type: 'integer', minimum: -50, maximum: 60 } },
    required: ['city', 'temp'], additionalProperties: false,
  };
  const r = await client.responses.create({ model: 'm', input: 'The weather?', max_output_tokens: 64,
    temperature: 0, text: { format: { type: 'json_schema', name: 'weather', schema, strict: true } } });
  const v = JSON.parse(r.output_text);
  assert.deepEqual(Object.keys(v).sort(), ['city', 'temp']);
  assert.equal(typeof v.city, 'string');
  assert.ok(v.city.length <= 12);
  assert.ok(Number.isInteger(v.temp) && v.temp >= -50 && v.temp <= 60, r.output_text);
  const o = await client.responses.create({ model: 'm', input: 'Any object', max_output_tokens: 48,
    temperature: 0, text: { format: { type: 'json_object' } } });
  assert.equal(typeof JSON.parse(o.output_text), 'object');
  // a keyword structured output cannot enforce is a 400 naming it
  const res = await postRaw(srv.base, '/v1/responses', JSON.stringify({ model: 'm', input: 'hi',
    text: { format: { type: 'json_schema', name: 'x', schema: { not: { type: 'string' } } } } }));
  assert.equal(res.status, 400, res.text);
  assert.match(res.json.error.message, /not/);
});
