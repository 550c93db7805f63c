// Anthropic Messages (/v1/messages, /v1/messages/count_tokens) with the
// official @anthropic-ai/sdk client. The model directory is tools.test.mjs's
// (Qwen 3's real tokenizer and chat template, random weights); the server
// runs with SPINDLE_TEST_HOOKS=1 so that a request can name its output
// ("spindle_debug_force_output", see tools.test.mjs), and prompts are
// checked token for token against the chat-completions path and the
// transformers-rendered tool round trip in ../shared/fixtures/tokenizers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Anthropic from '@anthropic-ai/sdk';
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
const OPENAI_TOOLS = toolCase.tools;
// the same tools as Anthropic declares them
const TOOLS = OPENAI_TOOLS.map((t) => ({
  name: t.function.name, description: t.function.description, input_schema: t.function.parameters,
}));
const USER = toolCase.messages[0];
const TOOL_CONTENT = toolCase.messages[2].content;
const CALL_TEXT = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Tokyo"}}\n</tool_call>';

let srv;
let client;
const anthropic = (s, opts = {}) => new Anthropic({ baseURL: s.base, apiKey: 'unused', maxRetries: 0, ...opts });

async function withHooks(args) {
  process.env.SPINDLE_TEST_HOOKS = '1';
  try {
    return await startServer(args);
  } finally {
    delete process.env.SPINDLE_TEST_HOOKS;
  }
}

before(async () => {
  if (!fs.existsSync(path.join(tokRoot, 'qwen3/tokenizer.json')))
    execFileSync('bash', [path.join(repo, 'scripts/fetch-tokenizers.sh'), tokRoot], { stdio: 'inherit' });
  execFileSync('node', [path.join(here, 'make_tools_model.mjs'), path.join(shared, 'fixtures/qwen3'),
    path.join(tokRoot, 'qwen3'), toolsModel], { stdio: 'inherit' });
  srv = await withHooks(['--model', toolsModel]);
  client = anthropic(srv);
});

after(async () => {
  if (srv) await srv.stop();
});

// The chat-completions prompt of the same conversation, as token ids.
async function chatIds(s, body) {
  const r = await postRaw(s.base, '/tokenize', JSON.stringify(body));
  assert.equal(r.status, 200, r.text);
  return r.json.tokens;
}

async function countTokens(s, body) {
  const r = await anthropic(s).messages.countTokens({ model: 'm', ...body });
  return r.input_tokens;
}

const totalInput = (u) => u.input_tokens + (u.cache_read_input_tokens || 0);

test('text: message shape, end_turn, usage consistent with chat completions and count_tokens', async () => {
  const body = { model: 'm', max_tokens: 50, messages: [{ role: 'user', content: 'Hello!' }] };
  const m = await client.messages.create({ ...body, spindle_debug_force_output: 'Hi there, friend.' });
  assert.equal(m.type, 'message');
  assert.equal(m.role, 'assistant');
  assert.match(m.id, /^msg_/);
  assert.deepEqual(m.content, [{ type: 'text', text: 'Hi there, friend.' }]);
  assert.equal(m.stop_reason, 'end_turn');
  assert.equal(m.stop_sequence, null);
  const chat = await srv.client().chat.completions.create({ model: 'm', messages: body.messages,
    spindle_debug_force_output: 'Hi there, friend.' });
  assert.equal(totalInput(m.usage), chat.usage.prompt_tokens);
  assert.equal(m.usage.output_tokens, chat.usage.completion_tokens);
  assert.equal(await countTokens(srv, { messages: body.messages }), chat.usage.prompt_tokens);
  // the prefix cache shows up as cache_read_input_tokens
  const again = await client.messages.create({ ...body, spindle_debug_force_output: 'Again.' });
  assert.ok(again.usage.cache_read_input_tokens >= 0);
  assert.equal(totalInput(again.usage), chat.usage.prompt_tokens);
});

test('system (string and blocks) renders as the chat system message', async () => {
  const messages = [{ role: 'user', content: 'What is the weather like?' }];
  const want = await chatIds(srv, { messages: [{ role: 'system', content: 'Be brief.\nAnswer in French.' }, ...messages] });
  assert.equal(await countTokens(srv, { system: 'Be brief.\nAnswer in French.', messages }), want.length);
  assert.equal(await countTokens(srv, {
    system: [{ type: 'text', text: 'Be brief.' }, { type: 'text', text: 'Answer in French.' }], messages,
  }), want.length);
  const m = await client.messages.create({ model: 'm', max_tokens: 20, system: 'Be brief.', messages,
    spindle_debug_force_output: 'Sunny.' });
  assert.equal(m.content[0].text, 'Sunny.');
});

test('multi-turn: the same prompt as chat completions; the answer continues it', async () => {
  const messages = [
    { role: 'user', content: 'My name is Ada.' },
    { role: 'assistant', content: [{ type: 'text', text: 'Nice to meet you, Ada.' }] },
    { role: 'user', content: [{ type: 'text', text: 'What is my name?' }] },
  ];
  const want = await chatIds(srv, { messages: [
    { role: 'user', content: 'My name is Ada.' },
    { role: 'assistant', content: 'Nice to meet you, Ada.' },
    { role: 'user', content: 'What is my name?' },
  ] });
  assert.equal(await countTokens(srv, { messages }), want.length);
  const m = await client.messages.create({ model: 'm', max_tokens: 20, messages, spindle_debug_force_output: 'Ada.' });
  assert.equal(m.content[0].text, 'Ada.');
  assert.equal(totalInput(m.usage), want.length);
});

test('streaming: the SDK stream helper assembles the non-stream message (greedy); events in order', async () => {
  const body = { model: 'm', max_tokens: 24, temperature: 0, messages: [{ role: 'user', content: 'Tell me a story' }] };
  const plain = await client.messages.create(body);
  const stream = client.messages.stream(body);
  const types = [];
  stream.on('streamEvent', (e) => types.push(e.type));
  const final = await stream.finalMessage();
  assert.deepEqual(final.content, plain.content);
  assert.equal(final.stop_reason, plain.stop_reason);
  assert.equal(final.stop_reason, 'max_tokens');
  assert.equal(final.usage.output_tokens, plain.usage.output_tokens);
  assert.equal(totalInput(final.usage), totalInput(plain.usage));
  assert.equal(types[0], 'message_start');
  assert.equal(types.at(-1), 'message_stop');
  assert.equal(types.at(-2), 'message_delta');
  assert.ok(types.includes('content_block_start') && types.includes('content_block_delta') &&
    types.includes('content_block_stop'), types.join(' '));
  // thinking then text, streamed and not: the same blocks
  const forced = { ...body, spindle_debug_force_output: '<think>\nLet me think.\n</think>\n\nOnce upon a time.' };
  const p2 = await client.messages.create(forced);
  assert.deepEqual(p2.content.map((b) => b.type), ['thinking', 'text']);
  assert.equal(p2.content[0].thinking, 'Let me think.');
  assert.equal(p2.content[1].text, 'Once upon a time.');
  const s2 = await client.messages.stream(forced).finalMessage();
  assert.deepEqual(s2.content, p2.content);
  assert.equal(s2.stop_reason, 'end_turn');
});

// A tool round trip: tool_use, then the tool_result, then the answer.
async function roundTrip(s, callText, renderCheck) {
  const c = anthropic(s);
  const body = { model: 'm', max_tokens: 80, tools: TOOLS, messages: [USER] };
  const m = await c.messages.create({ ...body, spindle_debug_force_output: callText });
  assert.equal(m.stop_reason, 'tool_use');
  const use = m.content.find((b) => b.type === 'tool_use');
  assert.ok(use, JSON.stringify(m.content));
  assert.match(use.id, /^toolu_/);
  assert.equal(use.name, 'get_weather');
  assert.deepEqual(use.input, { city: 'Tokyo' });
  // streamed, the same tool_use block
  const sm = await c.messages.stream({ ...body, spindle_debug_force_output: callText }).finalMessage();
  const suse = sm.content.find((b) => b.type === 'tool_use');
  assert.equal(suse.name, use.name);
  assert.deepEqual(suse.input, use.input);
  assert.equal(sm.stop_reason, 'tool_use');
  const messages = [USER, { role: 'assistant', content: m.content },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: TOOL_CONTENT }] }];
  await renderCheck(messages, use);
  const a = await c.messages.create({ ...body, messages, spindle_debug_force_output: 'It is 21 degrees and clear in Tokyo.' });
  assert.equal(a.content[0].text, 'It is 21 degrees and clear in Tokyo.');
  assert.equal(a.stop_reason, 'end_turn');
  return a;
}

test('tool use round trip with Qwen 3\'s template: the prompt equals transformers\' render', async () => {
  const a = await roundTrip(srv, CALL_TEXT, async (messages) => {
    // token for token what transformers renders for this conversation
    assert.equal(await countTokens(srv, { tools: TOOLS, messages }), toolCase.ids.length);
  });
  assert.equal(totalInput(a.usage), toolCase.ids.length);
  assert.ok(a.usage.cache_read_input_tokens > 0, 'the first turn\'s blocks are reused');
});

test('tool use round trip with Gemma 4\'s template (its call syntax and markers)', async () => {
  const g = await withHooks(['--model', toolsModel, '--chat-template', path.join(here, 'gemma4_like.jinja')]);
  try {
    const call = '<|channel>thought\nChecking.<channel|><|tool_call>call:get_weather{city:<|"|>Tokyo<|"|>}<tool_call|>';
    await roundTrip(g, call, async (messages, use) => {
      const want = await chatIds(g, { tools: OPENAI_TOOLS, messages: [USER,
        { role: 'assistant', content: '', reasoning_content: 'Checking.', tool_calls: [{ id: use.id, type: 'function',
          function: { name: 'get_weather', arguments: '{"city":"Tokyo"}' } }] },
        { role: 'tool', tool_call_id: use.id, name: 'get_weather', content: TOOL_CONTENT }] });
      assert.equal(await countTokens(g, { tools: TOOLS, messages }), want.length);
    });
  } finally {
    await g.stop();
  }
});

test('tool_choice any / tool are enforced on the random model', async () => {
  const body = { model: 'm', max_tokens: 60, temperature: 0, tools: TOOLS, messages: [USER] };
  for (const tool_choice of [{ type: 'any' }, { type: 'tool', name: 'get_weather' }]) {
    const m = await client.messages.create({ ...body, tool_choice });
    assert.equal(m.stop_reason, 'tool_use', JSON.stringify(m.content));
    const use = m.content.find((b) => b.type === 'tool_use');
    assert.equal(use.name, 'get_weather');
    assert.equal(typeof use.input, 'object');
  }
});

test('stop_sequences: the text ends before it, stop_reason stop_sequence names it', async () => {
  const body = { model: 'm', max_tokens: 30, temperature: 0, messages: [{ role: 'user', content: 'Count for me' }] };
  const full = (await client.messages.create(body)).content[0].text;
  assert.ok(full.length > 12, full);
  const stop = full.slice(8, 11);
  const cut = full.indexOf(stop);
  const m = await client.messages.create({ ...body, stop_sequences: ['never-there', stop] });
  assert.equal(m.content[0].text, full.slice(0, cut));
  assert.equal(m.stop_reason, 'stop_sequence');
  assert.equal(m.stop_sequence, stop);
  const s = await client.messages.stream({ ...body, stop_sequences: [stop] }).finalMessage();
  assert.equal(s.stop_reason, 'stop_sequence');
  assert.equal(s.stop_sequence, stop);
  assert.equal(s.content[0].text, m.content[0].text);
});

test('errors in Anthropic\'s shape: missing max_tokens, bad roles, bad blocks', async () => {
  const cases = [
    [{ messages: [{ role: 'user', content: 'hi' }] }, /max_tokens/],
    [{ max_tokens: 5, messages: [{ role: 'system', content: 'hi' }] }, /messages\[0\]\.role.*top-level system/],
    [{ max_tokens: 5, messages: [{ role: 'tool', content: 'hi' }] }, /messages\[0\]\.role/],
    [{ max_tokens: 5, messages: [] }, /messages/],
    [{ max_tokens: 0, messages: [{ role: 'user', content: 'hi' }] }, /max_tokens/],
    [{ max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'image', source: {} }] }] }, /messages\[0\]\.content\[0\].*image/],
    [{ max_tokens: 5, temperature: 1.5, messages: [{ role: 'user', content: 'hi' }] }, /temperature/],
    [{ max_tokens: 5, messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'Sure' }] }, /prefill/],
    [{ max_tokens: 5, tools: [{ type: 'web_search_20250305', name: 'web' }], messages: [{ role: 'user', content: 'hi' }] }, /tools\[0\]/],
  ];
  for (const [body, re] of cases) {
    const res = await postRaw(srv.base, '/v1/messages', JSON.stringify({ model: 'm', ...body }));
    assert.equal(res.status, 400, res.text);
    assert.equal(res.json.type, 'error', res.text);
    assert.equal(res.json.error.type, 'invalid_request_error');
    assert.match(res.json.error.message, re);
  }
  // the SDK sees a BadRequestError carrying that body
  await assert.rejects(client.messages.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
    (e) => e.status === 400 && e.error.type === 'error' && /max_tokens/.test(e.error.error.message));
  const bad = await postRaw(srv.base, '/v1/messages', '{"max_tokens": 5,');
  assert.equal(bad.status, 400);
  assert.equal(bad.json.type, 'error');
});

test('x-api-key is accepted like Authorization: Bearer with --api-key', async () => {
  const k = await startServer(['--model', toolsModel, '--api-key', 'sekrit']);
  try {
    const body = { model: 'm', max_tokens: 3, messages: [{ role: 'user', content: 'hi' }] };
    const ok = await anthropic(k, { apiKey: 'sekrit' }).messages.create(body);
    assert.equal(ok.type, 'message');
    await assert.rejects(anthropic(k, { apiKey: 'wrong' }).messages.create(body),
      (e) => e.status === 401 && e.error.error.type === 'authentication_error');
    const bearer = await postRaw(k.base, '/v1/messages', JSON.stringify(body), { Authorization: 'Bearer sekrit' });
    assert.equal(bearer.status, 200, bearer.text);
    const openai = await k.client({ apiKey: 'sekrit' }).chat.completions.create({ model: 'm', messages: body.messages, max_tokens: 2 });
    assert.ok(openai.choices.length === 1);
    const xkey = await postRaw(k.base, '/v1/chat/completions',
      JSON.stringify({ messages: body.messages, max_tokens: 2 }), { 'x-api-key': 'sekrit' });
    assert.equal(xkey.status, 200, xkey.text);
  } finally {
    await k.stop();
  }
});
