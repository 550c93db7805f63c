// Structured output end to end, with the official openai client: every
// schema of tests/structured/schemas, greedy and sampled (temperature 1.5,
// several seeds), on a random-weight model with Qwen 3's real tokenizer
// (make_tools_model.mjs): each output must JSON.parse and validate with
// ajv (draft 2020-12, ajv-formats for "format"). A random model has no
// idea of the schema: the grammar alone makes the output valid.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { BIN, MODEL, startServer, postRaw } from './helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const shared = process.env.SPINDLE_FIXTURE
  ? path.resolve(process.env.SPINDLE_FIXTURE, '../..')
  : process.env.SP_SHARED_DIR || path.resolve(repo, '../shared');
const tokRoot = process.env.SP_TOKENIZERS_DIR || path.join(repo, 'build/tokenizers');
const toolsModel = path.join(process.env.SPINDLE_FIXTURE ? path.dirname(path.resolve(MODEL)) : path.join(repo, 'build'),
  'e2e-tools-model');
const schemaDir = path.join(repo, 'tests/structured/schemas');
const SCHEMAS = fs.readdirSync(schemaDir).filter((f) => f.endsWith('.json')).sort()
  .map((f) => ({ name: f.replace(/\.json$/, ''), schema: JSON.parse(fs.readFileSync(path.join(schemaDir, f), 'utf8')) }));

const LIGHT = /\/(asan|tsan)\//.test(BIN);
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);

let srv;
let client;

before(async () => {
  if (!fs.existsSync(path.join(tokRoot, 'qwen3/tokenizer.json')))
    execFileSync('bash', [path.join(repo, 'scripts/fetch-tokenizers.sh'), tokRoot], { stdio: 'inherit' });
  execFileSync('node', [path.join(here, 'make_tools_model.mjs'), path.join(shared, 'fixtures/qwen3'),
    path.join(tokRoot, 'qwen3'), toolsModel], { stdio: 'inherit' });
  srv = await startServer(['--model', toolsModel, '--parallel', '4']);
  client = srv.client();
});

after(async () => {
  if (srv) await srv.stop();
});

const MAX_TOKENS = 200;
const chatBody = (schema, extra = {}) => ({
  model: 'm',
  messages: [{ role: 'user', content: 'Answer in JSON.' }],
  max_tokens: MAX_TOKENS,
  chat_template_kwargs: { enable_thinking: false },
  response_format: { type: 'json_schema', json_schema: { name: 'out', schema, strict: true } },
  ...extra,
});

function checkValid(name, validate, text, finish) {
  assert.equal(finish, 'stop', `${name}: finish_reason ${finish} for ${JSON.stringify(text)}`);
  let value;
  assert.doesNotThrow(() => (value = JSON.parse(text)), `${name}: not JSON: ${JSON.stringify(text)}`);
  assert.ok(validate(value), `${name}: ${JSON.stringify(text)} fails the schema: ${ajv.errorsText(validate.errors)}`);
}

async function streamText(body) {
  const stream = await client.chat.completions.create({ ...body, stream: true });
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    const c = chunk.choices[0];
    if (c?.delta?.content) text += c.delta.content;
    if (c?.finish_reason) finish = c.finish_reason;
  }
  return { text, finish };
}

for (const [i, { name, schema }] of SCHEMAS.entries()) {
  if (LIGHT && i % 3) continue;
  test(`schema ${name}: greedy, streamed and not, and sampled at temperature 1.5`, async () => {
    const validate = ajv.compile(schema);
    const greedy = await client.chat.completions.create(chatBody(schema, { temperature: 0 }));
    const g = greedy.choices[0];
    checkValid(`${name} greedy`, validate, g.message.content, g.finish_reason);
    const streamed = await streamText(chatBody(schema, { temperature: 0 }));
    assert.equal(streamed.text, g.message.content, `${name}: stream differs from non-stream`);
    assert.equal(streamed.finish, g.finish_reason);
    // choice i is seeded with seed + i: four seeds
    const r = await client.chat.completions.create(chatBody(schema, { temperature: 1.5, seed: 1, n: 4 }));
    assert.equal(r.choices.length, 4);
    for (const c of r.choices) checkValid(`${name} seed ${1 + c.index}`, validate, c.message.content, c.finish_reason);
  });
}

test('json_object mode, guided_json and llama-server json_schema on /v1/completions and chat', async () => {
  const r = await client.chat.completions.create({
    model: 'm', messages: [{ role: 'user', content: 'x' }], max_tokens: 200, temperature: 1.5, seed: 5,
    chat_template_kwargs: { enable_thinking: false }, response_format: { type: 'json_object' } });
  const v = JSON.parse(r.choices[0].message.content);
  assert.equal(typeof v, 'object');
  assert.ok(v !== null && !Array.isArray(v));
  const schema = SCHEMAS.find((s) => s.name === '02_enums').schema;
  const validate = ajv.compile(schema);
  for (const field of ['guided_json', 'json_schema']) {
    const c = await client.completions.create({ model: 'm', prompt: 'Colors:', max_tokens: 200,
      temperature: 1.5, seed: 9, [field]: schema });
    checkValid(field, validate, c.choices[0].text, c.choices[0].finish_reason);
  }
  // vLLM also takes the schema as a JSON string
  const c = await client.completions.create({ model: 'm', prompt: 'Colors:', max_tokens: 200,
    temperature: 1.5, seed: 10, guided_json: JSON.stringify(schema) });
  checkValid('guided_json string', validate, c.choices[0].text, c.choices[0].finish_reason);
  // response_format text: no constraint (the random model's text is not JSON)
  const t = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }],
    max_tokens: 8, temperature: 0, response_format: { type: 'text' } });
  assert.equal(t.choices[0].finish_reason, 'length');
});

test('guided_choice and guided_regex, streamed equals non-streamed', async () => {
  for (const seed of [1, 2, 3]) {
    const c = await client.completions.create({ model: 'm', prompt: 'Pick:', max_tokens: 20,
      temperature: 1.5, seed, guided_choice: ['alpha', 'beta', 'gamma delta'] });
    assert.ok(['alpha', 'beta', 'gamma delta'].includes(c.choices[0].text), c.choices[0].text);
    assert.equal(c.choices[0].finish_reason, 'stop');
    const r = await client.completions.create({ model: 'm', prompt: 'Code:', max_tokens: 40,
      temperature: 1.5, seed, guided_regex: '[A-Z]{2}-[0-9]{3}( [a-z]+)?' });
    assert.match(r.choices[0].text, /^[A-Z]{2}-[0-9]{3}( [a-z]+)?$/);
  }
  const body = { model: 'm', prompt: 'Code:', max_tokens: 40, temperature: 0, guided_regex: '\\d{3}(,\\d{3})*' };
  const plain = await client.completions.create(body);
  const stream = await client.completions.create({ ...body, stream: true });
  let text = '';
  for await (const ch of stream) text += ch.choices[0]?.text ?? '';
  assert.equal(text, plain.choices[0].text);
  assert.match(text, /^\d{3}(,\d{3})*$/);
});

test('max_tokens too small: finish_reason length and the output is a prefix', async () => {
  const schema = SCHEMAS.find((s) => s.name === '23_deep_nesting').schema;
  const r = await client.chat.completions.create(chatBody(schema, { max_tokens: 5, temperature: 0 }));
  const c = r.choices[0];
  assert.equal(c.finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 5);
  assert.throws(() => JSON.parse(c.message.content));
  assert.ok('{"l1":{"l2":{"l3":{"leaf":"ok"}}}}'.startsWith(c.message.content.replace(/\s/g, '')),
    c.message.content);
});

test('reasoning stays free; the schema applies after </think>', async () => {
  // Qwen 3 with thinking on: the model may open <think> itself; the logit
  // bias makes this random model open a block, then close it at once.
  const schema = SCHEMAS.find((s) => s.name === '02_enums').schema;
  const validate = ajv.compile(schema);
  const r = await client.chat.completions.create({
    model: 'm', messages: [{ role: 'user', content: 'x' }], max_tokens: 120, temperature: 0,
    logit_bias: { 151667: 50, 151668: 100 },
    response_format: { type: 'json_schema', json_schema: { name: 'o', schema } } });
  const c = r.choices[0];
  assert.equal(c.message.reasoning_content ?? '', '');
  checkValid('after reasoning', validate, c.message.content.trim(), c.finish_reason);
});

test('unsupported keyword and invalid schemas: 400 naming them; the server keeps serving', async () => {
  const cases = [
    [{ type: 'object', properties: { a: { type: 'string', not: { const: 'x' } } } }, /'not'/, 'response_format.json_schema.schema.properties.a.not'],
    [{ type: 'array', items: { type: 'integer' }, uniqueItems: true }, /'uniqueItems'/, 'response_format.json_schema.schema.uniqueItems'],
    [{ type: 'string', pattern: '(?<=a)b' }, /pattern/, 'response_format.json_schema.schema.pattern'],
    [{ type: 'string', format: 'hostname' }, /format 'hostname'/, 'response_format.json_schema.schema.format'],
    [{ type: 'object', properties: { a: { type: 'integer', multipleOf: 3 } } }, /'multipleOf'/, 'response_format.json_schema.schema.properties.a.multipleOf'],
    [{ type: 'strng' }, /not a JSON Schema type/, 'response_format.json_schema.schema.type'],
    [{ type: 'string', pattern: '[a-' }, /unterminated character class/, 'response_format.json_schema.schema.pattern'],
    [{ $ref: '#/$defs/nope' }, /\$ref/, 'response_format.json_schema.schema.$ref'],
    [{ type: 'object', properties: { a: false }, required: ['a'] }, /no JSON value satisfies/, 'response_format.json_schema.schema'],
  ];
  for (const [schema, msg, param] of cases) {
    const res = await postRaw(srv.base, '/v1/chat/completions', JSON.stringify(chatBody(schema)));
    assert.equal(res.status, 400, JSON.stringify(schema));
    const body = JSON.parse(res.text);
    assert.match(body.error.message, msg);
    assert.equal(body.error.param, param);
    assert.equal(body.error.type, 'invalid_request_error');
  }
  const bad = [
    [{ response_format: { type: 'xml' } }, 'response_format.type'],
    [{ response_format: { type: 'json_schema', json_schema: { name: 'x' } } }, 'response_format.json_schema.schema'],
    [{ guided_choice: [] }, 'guided_choice'],
    [{ guided_regex: '(a' }, 'guided_regex'],
    [{ guided_json: '{not json' }, 'guided_json'],
    [{ grammar: 'root ::= "a"' }, 'grammar'],
    [{ guided_regex: 'a', guided_choice: ['a'] }, 'guided_regex'],
  ];
  for (const [extra, param] of bad) {
    const res = await postRaw(srv.base, '/v1/completions', JSON.stringify({ model: 'm', prompt: 'x', max_tokens: 4, ...extra }));
    assert.equal(res.status, 400, JSON.stringify(extra));
    assert.equal(JSON.parse(res.text).error.param, param);
  }
  const ok = await client.chat.completions.create(chatBody({ type: 'boolean' }, { temperature: 0 }));
  assert.ok(['true', 'false'].includes(ok.choices[0].message.content.trim()), ok.choices[0].message.content);
});
