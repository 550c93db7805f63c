// Image input end to end (issue 20), with the official openai client against
// `spindle serve` on the two vision fixtures (transformers 5.17 references):
// image files sent as data: URLs and from a loopback HTTP server give
// transformers' greedy ids, several images per message included; usage counts
// the soft tokens; a follow-up turn with the same image hits the prefix cache
// and one with another image does not; corrupt, oversized, unsupported and
// unreachable images get a 400 naming the part, and the server keeps serving.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { startServer } from './helpers.mjs';
import { makeVisionModel } from './make_vision_model.mjs';

const SHARED = process.env.SPINDLE_SHARED;
const BUILD = process.env.SPINDLE_BUILD;
const IMAGES = SHARED && path.join(SHARED, 'fixtures/vision/images');
const FIXTURES = SHARED && BUILD && {
  gemma3: path.join(SHARED, 'fixtures/vision/gemma3_vision'),
  gemma4: path.join(BUILD, 'fixtures/vision/gemma4_vision'),
};
const skip = !FIXTURES && 'SPINDLE_SHARED / SPINDLE_BUILD not set (run through tests/e2e/run.sh)';

const servers = {};
const refs = {};
let images; // loopback HTTP server for image URLs
let imageBase;

function dataUrl(file) {
  const ext = path.extname(file).slice(1).replace('jpg', 'jpeg');
  return `data:image/${ext};base64,${fs.readFileSync(path.join(IMAGES, file)).toString('base64')}`;
}

// The fixture prompt as chat content: text parts of "<tN>" tokens around the
// image parts (bos comes from the template).
function content(ids, imageUrls, soft) {
  const parts = [];
  let text = '';
  let k = 0;
  for (let i = 1; i < ids.length; i++) {
    if (ids[i] === soft) continue;
    if (ids[i] === 501) { // boi: the image part takes boi + soft tokens + eoi
      if (text) parts.push({ type: 'text', text });
      text = '';
      parts.push({ type: 'image_url', image_url: { url: imageUrls[k++], detail: 'auto' } });
      continue;
    }
    if (ids[i] === 502) continue;
    text += `<t${ids[i]}>`;
  }
  if (text) parts.push({ type: 'text', text });
  return parts;
}

async function chat(srv, messages, extra = {}) {
  const r = await srv.client().chat.completions.create({
    model: 'x', messages, max_tokens: 16, temperature: 0, ignore_eos: true, logprobs: true,
    return_tokens_as_token_ids: true, ...extra,
  });
  return {
    ids: r.choices[0].logprobs.content.map((t) => Number(t.token.replace('token_id:', ''))),
    usage: r.usage,
  };
}

async function rawChat(srv, body) {
  const r = await fetch(`${srv.base}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

before(async () => {
  if (skip) return;
  images = http.createServer((req, res) => {
    const file = path.join(IMAGES, path.basename(req.url));
    if (req.url.startsWith('/redirect/')) {
      res.writeHead(302, { Location: `/${path.basename(req.url)}` }).end();
    } else if (fs.existsSync(file)) {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' }).end(fs.readFileSync(file));
    } else {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise((r) => images.listen(0, '127.0.0.1', r));
  imageBase = `http://127.0.0.1:${images.address().port}`;
  for (const family of ['gemma3', 'gemma4']) {
    const dir = makeVisionModel(FIXTURES[family], path.join(BUILD, `e2e-vision-${family}`), family);
    refs[family] = JSON.parse(fs.readFileSync(path.join(FIXTURES[family], 'reference.json')));
    // 8-token blocks and 16-token prefill chunks: the engine must stretch chunks to whole images
    servers[family] = await startServer(['--model', dir, '--precision', 'f32', '--parallel', '2',
      '--block-size', '8', '--prefill-chunk', '16', '--max-image-bytes', '1M', '--ctx-size', '640']);
  }
});

after(async () => {
  for (const s of Object.values(servers)) await s.stop();
  if (images) images.close();
});

for (const family of ['gemma3', 'gemma4']) {
  test(`${family}: data: URL images give transformers' greedy ids`, { skip }, async () => {
    for (const p of refs[family].prompts) {
      const msgs = [{ role: 'user', content: content(p.prompt_ids, p.images.map(dataUrl), 500) }];
      const r = await chat(servers[family], msgs);
      assert.deepEqual(r.ids, p.greedy_ids, `${family} ${p.images}`);
      assert.equal(r.usage.prompt_tokens, p.prompt_ids.length); // soft tokens counted
    }
  });

  test(`${family}: an image from an http:// URL (loopback server, with a redirect)`, { skip },
    async () => {
      const p = refs[family].prompts[0];
      for (const url of [`${imageBase}/${p.images[0]}`, `${imageBase}/redirect/${p.images[0]}`]) {
        const msgs = [{ role: 'user', content: content(p.prompt_ids, [url], 500) }];
        assert.deepEqual((await chat(servers[family], msgs)).ids, p.greedy_ids);
      }
    });
}

test('gemma3: Anthropic image blocks on /v1/messages read the same image as image_url parts',
  { skip }, async () => {
    const p = refs.gemma3.prompts[0];
    const parts = content(p.prompt_ids, p.images.map(dataUrl), 500);
    const blocks = parts.map((x) => (x.type === 'text' ? x : {
      type: 'image',
      source: { type: 'base64', media_type: x.image_url.url.slice(5, x.image_url.url.indexOf(';')),
        data: x.image_url.url.slice(x.image_url.url.indexOf(',') + 1) },
    }));
    const srv = servers.gemma3;
    const c = await srv.client().chat.completions.create({ model: 'x', max_tokens: 12, temperature: 0,
      messages: [{ role: 'user', content: parts }] });
    const res = await fetch(`${srv.base}/v1/messages`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'x', max_tokens: 12, temperature: 0,
        messages: [{ role: 'user', content: blocks }] }),
    });
    const m = await res.json();
    assert.equal(res.status, 200, JSON.stringify(m));
    assert.equal(m.usage.input_tokens + (m.usage.cache_read_input_tokens || 0), p.prompt_ids.length);
    assert.equal(m.content.map((b) => b.text || '').join(''), c.choices[0].message.content);
  });

test('gemma3: a follow-up turn reuses the cached image; another image does not', { skip },
  async () => {
    const srv = servers.gemma3;
    const p = refs.gemma3.prompts[0];
    const turn = (img) => [
      { role: 'user', content: content(p.prompt_ids, [dataUrl(img)], 500) },
      { role: 'assistant', content: '<t184><t184>' },
      { role: 'user', content: [{ type: 'text', text: '<t10><t11><t12>' }] },
    ];
    const first = await chat(srv, turn('scene.png'));
    const again = await chat(srv, turn('scene.png'));
    assert.deepEqual(again.ids, first.ids);
    assert.ok(again.usage.prompt_tokens_details.cached_tokens >= 24,
      `cached ${again.usage.prompt_tokens_details.cached_tokens}`);
    const start = p.prompt_ids.indexOf(500);
    const other = await chat(srv, turn('alpha.png'));
    assert.ok(other.usage.prompt_tokens_details.cached_tokens <= start,
      `another image reused ${other.usage.prompt_tokens_details.cached_tokens} tokens`);
  });

test('bad images get a 400 naming the part; the server keeps serving', { skip }, async () => {
  const srv = servers.gemma4;
  const p = refs.gemma4.prompts[0];
  const png = fs.readFileSync(path.join(IMAGES, 'scene.png'));
  const bad = {
    truncated: [`data:image/png;base64,${png.subarray(0, 2000).toString('base64')}`, /PNG/],
    corrupt: [`data:image/jpeg;base64,${Buffer.from([0xff, 0xd8, 0xff, 1, 2, 3, 4]).toString('base64')}`,
      /JPEG/],
    'not an image': [`data:image/png;base64,${Buffer.from('hello').toString('base64')}`,
      /supported/],
    bmp: [`data:image/bmp;base64,${Buffer.from('BM\x36\0\0\0\0\0\0\0').toString('base64')}`, /BMP/],
    'bad base64': ['data:image/png;base64,@@@@', /base64/],
    'not base64': ['data:image/png,abc', /base64/],
    oversized: [`data:image/png;base64,${Buffer.alloc(1100000, 1).toString('base64')}`, /limit/],
    'http 404': [`${imageBase}/missing.png`, /404/],
    'file:// not allowed': [`file://${path.join(IMAGES, 'scene.png')}`, /allowed-local-media-path/],
    'ftp scheme': ['ftp://example.com/a.png', /scheme/],
  };
  for (const [what, [url, msg]] of Object.entries(bad)) {
    const msgs = [{ role: 'user', content: [{ type: 'text', text: '<t5>' },
      { type: 'image_url', image_url: { url } }] }];
    const r = await rawChat(srv, { messages: msgs, max_tokens: 2 });
    assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
    assert.match(r.body.error.message, /messages\[0\]\.content\[1\]/, what);
    assert.match(r.body.error.message, msg, `${what}: ${r.body.error.message}`);
  }
  // user text holding the image placeholder: one placeholder too many for the images
  const extra = await rawChat(srv, { max_tokens: 2, messages: [{ role: 'user', content: [
    { type: 'text', text: '<t5><|image|>' }, { type: 'image_url', image_url: { url: dataUrl('scene.png') } }] }] });
  assert.equal(extra.status, 400, JSON.stringify(extra.body));
  assert.equal(extra.body.error.param, 'messages');
  assert.match(extra.body.error.message, /2 image placeholder\(s\) .* for 1 image/);
  // and the server still answers a good image request
  const msgs = [{ role: 'user', content: content(p.prompt_ids, [dataUrl('scene.png')], 500) }];
  assert.deepEqual((await chat(srv, msgs)).ids, p.greedy_ids);
});

test('image limits, remote and local policy flags', { skip }, async () => {
  const dir = path.join(BUILD, 'e2e-vision-gemma3');
  const srv = await startServer(['--model', dir, '--no-remote-images', '--max-image-pixels', '10000',
    '--allowed-local-media-path', IMAGES, '--max-images', '1']);
  try {
    const ask = (url) => rawChat(srv, { max_tokens: 1, messages: [{ role: 'user', content: [
      { type: 'text', text: '<t5>' }, { type: 'image_url', image_url: { url } }] }] });
    let r = await ask(`${imageBase}/scene.png`);
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /no-remote-images/);
    r = await ask(dataUrl('scene.png')); // 157 x 113 = 17741 pixels
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /exceeds the limit of 10000 pixels/);
    r = await ask(`file://${path.join(IMAGES, 'alpha.png')}`); // 96 x 160 = 15360: too many too
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /exceeds the limit/);
    // a 9 x 7 PNG (the fuzz seed, after its flag byte): under the pixel limit
    const tiny = fs.readFileSync(new URL('../fuzz/corpus/image/png-rgb', import.meta.url)).subarray(1);
    const two = { type: 'image_url', image_url: { url: `data:image/png;base64,${tiny.toString('base64')}` } };
    r = await rawChat(srv, { max_tokens: 1, messages: [{ role: 'user', content: [two, two] }] });
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /more than 1 images/);
    assert.equal(r.body.error.param, 'messages[0].content[1]');
    r = await ask(`file://${path.join(IMAGES, '..', 'images', 'missing.png')}`);
    assert.equal(r.status, 400);
    r = await ask(`file://${path.join(IMAGES, '..', 'gemma3_vision', 'config.json')}`);
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /outside --allowed-local-media-path/);
  } finally {
    await srv.stop();
  }
});

test('a model without a vision tower answers an image part with a 400', { skip }, async () => {
  const srv = await startServer([]); // the default e2e model: text only
  try {
    const r = await rawChat(srv, { max_tokens: 1, messages: [{ role: 'user', content: [
      { type: 'text', text: 'hi' }, { type: 'image_url', image_url: { url: dataUrl('scene.png') } }] }] });
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /no vision tower/);
    assert.equal(r.body.error.param, 'messages[0].content[1]');
  } finally {
    await srv.stop();
  }
});
