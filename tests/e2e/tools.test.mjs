// Tool calls and reasoning end to end, with the official openai client.
//
// A tiny random model does not choose to call tools, so the server runs with
// SPINDLE_TEST_HOOKS=1 and each request names the output it must produce
// ("spindle_debug_force_output"): the engine still runs one step per token,
// the response carries the tokenization of that text, detokenized token by
// token through the same path as a real generation (so markers arrive split
// as a real model splits them). The model directory (make_tools_model.mjs)
// has Qwen 3's real tokenizer and chat template.
// The tool_choice "required" / named tests force nothing: the constraint
// (engine/constrain.c) must turn the random model's output into a call.
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
// next to run.sh's fixture model (in the build dir), else under build/
const toolsModel = path.join(process.env.SPINDLE_FIXTURE ? path.dirname(path.resolve(MODEL)) : path.join(repo, 'build'),
  'e2e-tools-model');

const fixture = JSON.parse(fs.readFileSync(path.join(shared, 'fixtures/tokenizers/qwen3.json'), 'utf8'));
const toolResultCase = fixture.chat.find((c) => c.name === 'tool_result' && c.add_generation_prompt);

// The fixture's conversation, in the OpenAI shape a client sends.
const TOOLS = toolResultCase.tools;
const USER = toolResultCase.messages[0];
const TOOL_CONTENT = toolResultCase.messages[2].content;
const CALL_TEXT = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Tokyo"}}\n</tool_call>';

let srv;
let client;

before(async () => {
  if (!fs.existsSync(path.join(tokRoot, 'qwen3/tokenizer.json')))
    execFileSync('bash', [path.join(repo, 'scripts/fetch-tokenizers.sh'), tokRoot], { stdio: 'inherit' });
  execFileSync('node', [path.join(here, 'make_tools_model.mjs'), path.join(shared, 'fixtures/qwen3'),
    path.join(tokRoot, 'qwen3'), toolsModel], { stdio: 'inherit' });
  process.env.SPINDLE_TEST_HOOKS = '1';
  srv = await startServer(['--model', toolsModel]);
  delete process.env.SPINDLE_TEST_HOOKS;
  client = srv.client();
});

after(async () => {
  if (srv) await srv.stop();
});

const base = (output, extra = {}) => ({
  model: 'm',
  messages: [USER],
  tools: TOOLS,
  spindle_debug_force_output: output,
  ...extra,
});

function checkCallShape(call) {
  assert.match(call.id, /^call_[A-Za-z0-9]{24}$/);
  assert.equal(call.type, 'function');
  assert.equal(typeof call.function.arguments, 'string');
}

// Streams with the client's own accumulator (it rejects chunks that do not
// follow OpenAI's tool call delta shape) and checks every chunk.
async function streamed(body, { markupIsContent = false } = {}) {
  const stream = client.chat.completions.stream({ ...body, stream: true });
  const chunks = [];
  stream.on('chunk', (c) => chunks.push(c));
  const final = await stream.finalChatCompletion();
  const seen = new Map();
  let content = '';
  let reasoning = '';
  for (const c of chunks) {
    for (const ch of c.choices) {
      const d = ch.delta || {};
      if (d.content) content += d.content;
      if (d.reasoning_content) reasoning += d.reasoning_content;
      for (const tc of d.tool_calls || []) {
        if (!seen.has(tc.index)) {
          // first chunk of a call: index, id, type, name, arguments ""
          assert.equal(seen.size, tc.index, 'calls start in index order');
          checkCallShape(tc);
          assert.equal(typeof tc.function.name, 'string');
          seen.set(tc.index, { id: tc.id, name: tc.function.name, args: tc.function.arguments });
        } else {
          assert.equal(tc.id, undefined, 'id only in the first chunk');
          assert.equal(tc.function.name, undefined, 'name only in the first chunk');
          seen.get(tc.index).args += tc.function.arguments;
        }
      }
    }
  }
  for (const marker of ['<tool_call>', '</tool_call>', '<think>', '</think>'])
    if (!markupIsContent) assert.ok(!content.includes(marker), `markup leaked into delta.content: ${JSON.stringify(content)}`);
  return { final, content, reasoning, calls: [...seen.values()], chunks };
}

test('non-streaming tool call with reasoning: OpenAI message shape', async () => {
  const out = '<think>\nThe user wants the weather in Tokyo.\n</think>\n\n' + CALL_TEXT;
  const r = await client.chat.completions.create(base(out));
  const ch = r.choices[0];
  assert.equal(ch.finish_reason, 'tool_calls');
  assert.equal(ch.message.role, 'assistant');
  assert.equal(ch.message.content, null);
  assert.equal(ch.message.reasoning_content, 'The user wants the weather in Tokyo.');
  assert.equal(ch.message.tool_calls.length, 1);
  const call = ch.message.tool_calls[0];
  checkCallShape(call);
  assert.equal(call.function.name, 'get_weather');
  assert.equal(call.function.arguments, '{"city": "Tokyo"}');
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Tokyo' });
});

test('streaming tool call: deltas assemble to the non-streaming message', async () => {
  const out = '<think>\nThe user wants the weather.\n</think>\n\n' + CALL_TEXT;
  const plain = (await client.chat.completions.create(base(out))).choices[0].message;
  const s = await streamed(base(out));
  assert.equal(s.final.choices[0].finish_reason, 'tool_calls');
  assert.equal(s.content, '');
  assert.equal(s.reasoning, plain.reasoning_content);
  assert.equal(s.calls.length, 1);
  assert.equal(s.calls[0].name, 'get_weather');
  assert.equal(s.calls[0].args, plain.tool_calls[0].function.arguments);
  // arguments arrive in pieces after the first chunk
  const argChunks = s.chunks.filter((c) => c.choices[0]?.delta?.tool_calls?.[0]?.function?.arguments);
  assert.ok(argChunks.length > 1, `arguments in ${argChunks.length} chunk(s)`);
  const fm = s.final.choices[0].message;
  assert.equal(fm.tool_calls[0].function.arguments, '{"city": "Tokyo"}');
  assert.equal(fm.tool_calls[0].id, s.calls[0].id);
});

test('content then two parallel calls, streamed and not; parallel_tool_calls=false keeps one', async () => {
  const out = 'Checking both.\n' + CALL_TEXT +
    '\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>';
  const r = await client.chat.completions.create(base(out));
  const m = r.choices[0].message;
  assert.equal(m.content, 'Checking both.');
  assert.deepEqual(m.tool_calls.map((c) => JSON.parse(c.function.arguments).city), ['Tokyo', 'Paris']);
  assert.notEqual(m.tool_calls[0].id, m.tool_calls[1].id);
  const s = await streamed(base(out));
  assert.equal(s.content, 'Checking both.');
  assert.deepEqual(s.calls.map((c) => c.args), m.tool_calls.map((c) => c.function.arguments));
  const one = await client.chat.completions.create(base(out, { parallel_tool_calls: false }));
  assert.equal(one.choices[0].message.tool_calls.length, 1);
  assert.equal(one.choices[0].finish_reason, 'tool_calls');
});

test('a malformed call degrades to content with a warning, never a 500', async () => {
  const out = '<tool_call>\n{"name": get_weather, city=Tokyo}\n</tool_call>';
  const r = await client.chat.completions.create(base(out));
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.choices[0].message.content, out);
  assert.equal(r.choices[0].message.tool_calls, undefined);
  // streamed, the same text arrives as content (it is not a call)
  const s = await streamed(base(out), { markupIsContent: true });
  assert.equal(s.content, out);
  assert.equal(s.calls.length, 0);
  assert.equal(s.final.choices[0].finish_reason, 'stop');
  assert.match(srv.log(), /malformed tool call/);
});

test('plain answers and tool_choice "none" pass markup through as content', async () => {
  const r = await client.chat.completions.create(base('Sunny, 21 degrees.'));
  assert.equal(r.choices[0].message.content, 'Sunny, 21 degrees.');
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.choices[0].message.tool_calls, undefined);
  const none = await client.chat.completions.create(base(CALL_TEXT, { tool_choice: 'none' }));
  assert.equal(none.choices[0].message.content, CALL_TEXT);
  assert.equal(none.choices[0].finish_reason, 'stop');
  // "none" keeps the tools out of the prompt
  const tok = await postRaw(srv.base, '/tokenize', JSON.stringify({ messages: [USER], tools: TOOLS, tool_choice: 'none' }));
  const text = (await postRaw(srv.base, '/detokenize', JSON.stringify({ tokens: tok.json.tokens }))).json.content;
  assert.ok(!text.includes('# Tools'), text);
});

test('request validation: tools, tool_choice, parallel_tool_calls, tool_calls', async () => {
  const cases = [
    [{ tools: [{ type: 'function', function: {} }] }, 'tools[0].function.name'],
    [{ tools: 'x' }, 'tools'],
    [{ tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice.function.name'],
    [{ tool_choice: 'sometimes' }, 'tool_choice'],
    [{ parallel_tool_calls: 'yes' }, 'parallel_tool_calls'],
    [{ chat_template_kwargs: 3 }, 'chat_template_kwargs'],
    [{ messages: [USER, { role: 'assistant', content: null, tool_calls: [{ id: 'a', type: 'function', function: { arguments: '{}' } }] }] },
      'messages[1].tool_calls[0].function.name'],
  ];
  for (const [extra, param] of cases) {
    const res = await postRaw(srv.base, '/v1/chat/completions', JSON.stringify({ ...base('x'), ...extra }));
    assert.equal(res.status, 400, `${JSON.stringify(extra)}: ${res.text}`);
    assert.equal(res.json.error.param, param);
  }
  const named = await client.chat.completions.create(base(CALL_TEXT, {
    tool_choice: { type: 'function', function: { name: 'get_weather' } } }));
  assert.equal(named.choices[0].message.tool_calls[0].function.name, 'get_weather');
});

test('round trip: the tool result renders as transformers does and reuses the cache', async () => {
  const first = await client.chat.completions.create(base(CALL_TEXT));
  const msg = first.choices[0].message;
  assert.equal(msg.tool_calls.length, 1);
  const messages = [USER, msg, { role: 'tool', tool_call_id: msg.tool_calls[0].id, content: TOOL_CONTENT }];
  // the prompt of the second turn, byte for byte and id for id
  const tok = await postRaw(srv.base, '/tokenize', JSON.stringify({ messages, tools: TOOLS }));
  assert.equal(tok.status, 200, tok.text);
  const text = (await postRaw(srv.base, '/detokenize', JSON.stringify({ tokens: tok.json.tokens }))).json.content;
  assert.equal(text, toolResultCase.text);
  assert.deepEqual(tok.json.tokens, toolResultCase.ids);
  const second = await client.chat.completions.create({
    model: 'm', messages, tools: TOOLS, spindle_debug_force_output: 'It is 21 degrees and clear in Tokyo.' });
  assert.equal(second.choices[0].message.content, 'It is 21 degrees and clear in Tokyo.');
  assert.equal(second.usage.prompt_tokens, toolResultCase.ids.length);
  assert.ok(second.usage.prompt_tokens_details.cached_tokens > 0,
    `cached_tokens ${second.usage.prompt_tokens_details.cached_tokens}`);
});

test('chat_template_kwargs reach the template (enable_thinking=false)', async () => {
  const body = { messages: [USER], chat_template_kwargs: { enable_thinking: false } };
  const tok = await postRaw(srv.base, '/tokenize', JSON.stringify(body));
  const text = (await postRaw(srv.base, '/detokenize', JSON.stringify({ tokens: tok.json.tokens }))).json.content;
  assert.ok(text.endsWith('<|im_start|>assistant\n<think>\n\n</think>\n\n'), JSON.stringify(text.slice(-60)));
  const r = await client.chat.completions.create({ model: 'm', ...body, spindle_debug_force_output: 'Hi!' });
  assert.equal(r.choices[0].message.content, 'Hi!');
  assert.equal(r.choices[0].message.reasoning_content, undefined);
});

test('without SPINDLE_TEST_HOOKS the force field is ignored', async () => {
  const plain = await startServer(['--model', toolsModel]);
  try {
    const r = await plain.client().chat.completions.create({ ...base(CALL_TEXT), max_tokens: 3, temperature: 0 });
    assert.equal(r.usage.completion_tokens <= 3, true);
    assert.equal(r.choices[0].message.tool_calls, undefined);
  } finally {
    await plain.stop();
  }
});

test('gemma4 format (chosen from the template): thought channel and call syntax', async () => {
  const g = await (async () => {
    process.env.SPINDLE_TEST_HOOKS = '1';
    try {
      return await startServer(['--model', toolsModel, '--chat-template', path.join(here, 'gemma4_like.jinja')]);
    } finally {
      delete process.env.SPINDLE_TEST_HOOKS;
    }
  })();
  try {
    const gc = g.client();
    const out = '<|channel>thought\nPondering.<channel|><|tool_call>call:get_weather{city:<|"|>Tokyo "center"<|"|>,days:3}<tool_call|>';
    const r = await gc.chat.completions.create({ model: 'm', messages: [USER], tools: TOOLS, spindle_debug_force_output: out });
    const m = r.choices[0].message;
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(m.content, null);
    assert.equal(m.reasoning_content, 'Pondering.');
    assert.equal(m.tool_calls[0].function.name, 'get_weather');
    assert.equal(m.tool_calls[0].function.arguments, '{"city":"Tokyo \\"center\\"","days":3}');
    const saved = client;
    client = gc;
    try {
      const s = await streamed({ model: 'm', messages: [USER], tools: TOOLS, spindle_debug_force_output: out });
      for (const mk of ['<|tool_call>', '<tool_call|>', '<|channel>', '<channel|>', '<|"|>'])
        assert.ok(!s.content.includes(mk), s.content);
      assert.equal(s.reasoning, 'Pondering.');
      assert.equal(s.calls[0].args, m.tool_calls[0].function.arguments);
    } finally {
      client = saved;
    }
    // the generation prompt opened the channel: the output starts as reasoning
    const t = await gc.chat.completions.create({ model: 'm', messages: [USER],
      chat_template_kwargs: { enable_thinking: true }, spindle_debug_force_output: 'Hmm.<channel|>Answer.' });
    assert.equal(t.choices[0].message.reasoning_content, 'Hmm.');
    assert.equal(t.choices[0].message.content, 'Answer.');
    assert.match(g.log(), /chat output: tool calls 'gemma4', reasoning <\|channel>/);
  } finally {
    await g.stop();
  }
});

// tool_choice "required" / named are enforced by constrained decoding: the
// random model, with no forced output, must answer with well-formed calls.
const TOOLS2 = [...TOOLS, {
  type: 'function',
  function: {
    name: 'get_time', description: 'Current time in a time zone',
    parameters: { type: 'object', properties: { tz: { type: 'string' } }, required: ['tz'] },
  },
}];
const NAMES = TOOLS2.map((t) => t.function.name);

function checkEnforced(message, finish, names) {
  assert.equal(finish, 'tool_calls');
  assert.equal(message.content, null);
  assert.ok(message.tool_calls.length >= 1);
  for (const call of message.tool_calls) {
    checkCallShape(call);
    assert.ok(names.includes(call.function.name), call.function.name);
    const args = JSON.parse(call.function.arguments);
    assert.ok(args !== null && typeof args === 'object' && !Array.isArray(args), call.function.arguments);
  }
}

async function enforced(extra, names) {
  const body = { model: 'm', messages: [USER], tools: TOOLS2, temperature: 0, max_tokens: 60, ...extra };
  const r = await client.chat.completions.create(body);
  checkEnforced(r.choices[0].message, r.choices[0].finish_reason, names);
  assert.ok(r.usage.completion_tokens <= body.max_tokens);
  const s = await streamed(body);
  assert.equal(s.final.choices[0].finish_reason, 'tool_calls');
  assert.equal(s.content, '');
  // greedy: the stream assembles to the same calls as the plain response
  assert.deepEqual(s.calls.map((c) => [c.name, c.args]),
    r.choices[0].message.tool_calls.map((c) => [c.function.name, c.function.arguments]));
  return r.choices[0].message;
}

test('tool_choice "required" is enforced: a well-formed call from a random model, streamed and not', async () => {
  const m = await enforced({ tool_choice: 'required' }, NAMES);
  assert.doesNotMatch(srv.log(), /not enforced/);
  // one call when parallel_tool_calls is false
  const one = await enforced({ tool_choice: 'required', parallel_tool_calls: false }, NAMES);
  assert.equal(one.tool_calls.length, 1);
  // a tight budget still closes the call
  const tight = await enforced({ tool_choice: 'required', max_tokens: 30 }, NAMES);
  assert.ok(tight.tool_calls.length >= 1, JSON.stringify(m));
});

test('a named tool_choice is enforced: exactly that function, one call', async () => {
  for (const name of NAMES) {
    const m = await enforced({ tool_choice: { type: 'function', function: { name } } }, [name]);
    assert.equal(m.tool_calls.length, 1);
  }
});

test('enforced tool_choice when sampling, and with reasoning closed first', async () => {
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({ model: 'm', messages: [USER], tools: TOOLS2,
      tool_choice: 'required', temperature: 1, seed, max_tokens: 60 });
    checkEnforced(r.choices[0].message, r.choices[0].finish_reason, NAMES);
  }
  // a template whose generation prompt opens <think>: the constraint closes it first
  const t = await startServer(['--model', toolsModel, '--chat-template', path.join(here, 'think_open.jinja')]);
  try {
    const body = { model: 'm', messages: [USER], tools: TOOLS2, temperature: 0, max_tokens: 60,
      tool_choice: { type: 'function', function: { name: 'get_time' } } };
    const tok = await postRaw(t.base, '/tokenize', JSON.stringify(body));
    const text = (await postRaw(t.base, '/detokenize', JSON.stringify({ tokens: tok.json.tokens }))).json.content;
    assert.ok(text.endsWith('<|im_start|>assistant\n<think>\n'), JSON.stringify(text.slice(-40)));
    const r = await t.client().chat.completions.create(body);
    checkEnforced(r.choices[0].message, r.choices[0].finish_reason, ['get_time']);
    assert.equal(r.choices[0].message.tool_calls.length, 1);
    assert.ok(!r.choices[0].message.reasoning_content, r.choices[0].message.reasoning_content);
  } finally {
    await t.stop();
  }
});

test('gemma4 format: tool_choice enforced in its own call syntax', async () => {
  const g = await startServer(['--model', toolsModel, '--chat-template', path.join(here, 'gemma4_like.jinja')]);
  try {
    const gc = g.client();
    for (const [choice, names] of [['required', NAMES], [{ type: 'function', function: { name: 'get_time' } }, ['get_time']]]) {
      const body = { model: 'm', messages: [USER], tools: TOOLS2, tool_choice: choice, temperature: 0, max_tokens: 60 };
      const r = await gc.chat.completions.create(body);
      checkEnforced(r.choices[0].message, r.choices[0].finish_reason, names);
      assert.equal(r.choices[0].message.tool_calls.length, 1);
      const saved = client;
      client = gc;
      try {
        const s = await streamed(body);
        assert.equal(s.final.choices[0].finish_reason, 'tool_calls');
        assert.deepEqual(s.calls.map((c) => [c.name, c.args]),
          r.choices[0].message.tool_calls.map((c) => [c.function.name, c.function.arguments]));
      } finally {
        client = saved;
      }
    }
    assert.doesNotMatch(g.log(), /not enforced/);
  } finally {
    await g.stop();
  }
});
