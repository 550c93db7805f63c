// The chat page at / (webui/), driven in Debian's headless Chromium through
// playwright-core against a real `spindle serve`.
//
// The model has Qwen 3's real tokenizer and chat template over random
// layers (webui_browser.mjs). Where a test needs to know the exact text the
// model says (the XSS case, reasoning, tool calls), the server runs with
// SPINDLE_TEST_HOOKS=1 and the page's own "Extra request fields" setting
// adds "spindle_debug_force_output": the engine runs one step per token of
// that text and streams it back token by token over the same SSE path as
// any answer (docs/api.md). The page does not know it is being tested: it
// gets hostile text in the stream exactly as a model's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startServer, metrics, waitIdle } from './helpers.mjs';
import {
  launch, qwen3Model, qwen3Tools, setSettings, send, answered, conversations,
} from './webui_browser.mjs';

let model;
let srv;
let browser;
let page;
const requests = []; // every request the page made: {url, method, body, headers}
const pageErrors = [];

before(async () => {
  model = qwen3Model();
  process.env.SPINDLE_TEST_HOOKS = '1';
  try {
    srv = await startServer(['--model', model, '--ctx-size', '8192']);
  } finally {
    delete process.env.SPINDLE_TEST_HOOKS;
  }
  browser = await launch('main', { permissions: ['clipboard-read', 'clipboard-write'] });
  page = await browser.ctx.newPage();
  page.on('request', (r) => requests.push({ url: r.url(), method: r.method(), body: r.postData(),
    headers: r.headers() }));
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(`${srv.base}/`);
});

after(async () => {
  if (browser) await browser.close();
  if (srv) await srv.stop();
});

const chatRequests = () => requests.filter((r) => r.url.endsWith('/v1/chat/completions'));
const lastChatBody = () => JSON.parse(chatRequests().at(-1).body);
const SERVED_ID = () => path.basename(model);

test('the page is served from the binary and fetches nothing from elsewhere', async () => {
  const r = await fetch(`${srv.base}/`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/html/);
  assert.match(r.headers.get('content-security-policy'), /script-src 'self'/);
  const etag = r.headers.get('etag');
  assert.equal((await fetch(`${srv.base}/`, { headers: { 'If-None-Match': etag } })).status, 304);
  assert.equal((await fetch(`${srv.base}/webui/app.js`)).status, 200);
  assert.match(srv.log(), /chat page: http:\/\/127\.0\.0\.1:\d+\//);

  await page.waitForFunction((id) => document.getElementById('model').textContent === id, SERVED_ID());
  assert.ok(requests.length >= 3, 'page, script, style and /v1/models');
  for (const q of requests) assert.ok(q.url.startsWith(`${srv.base}/`), `request elsewhere: ${q.url}`);
  assert.ok(requests.some((q) => q.url === `${srv.base}/v1/models`));
  assert.deepEqual(pageErrors, []);
});

const SYSTEM = 'You are a helpful assistant.';
// Answers long enough to be seen growing (100 tokens came in one paint on a
// fast CI machine) and to be stopped before they end.
const LONG = 1000;
const LONGEST = 8000;

test('a message gets a streamed answer, with token counts and speed', async () => {
  await setSettings(page, { system: SYSTEM, temperature: '0', max_tokens: String(LONG),
    extra: '{"ignore_eos": true}' });
  // the page records each length its answer shows, and whether it was
  // still streaming then (Stop shown)
  await page.evaluate(() => {
    window.__seen = [];
    const c = () => document.querySelector('.msg.assistant .content');
    new MutationObserver(() => {
      const n = c() && !c().querySelector('.cursor') ? c().textContent.length : 0;
      if (n && n !== window.__seen.at(-1)?.n) {
        window.__seen.push({ n, streaming: !document.getElementById('stop').hidden });
      }
    }).observe(document.getElementById('messages'), { childList: true, subtree: true, characterData: true });
  });
  await send(page, 'Tell me a story');
  await answered(page);
  const seen = await page.evaluate(() => window.__seen);
  const streamed = seen.filter((s) => s.streaming).map((s) => s.n);
  assert.ok(streamed.length >= 3, `the answer grew in steps while streaming: ${JSON.stringify(seen)}`);
  console.log(`# the answer showed ${streamed.length} lengths while streaming`);

  const body = lastChatBody();
  assert.equal(body.model, SERVED_ID());
  assert.equal(body.stream, true);
  assert.equal(body.temperature, 0);
  assert.equal(body.max_tokens, LONG);
  assert.equal(body.ignore_eos, true);
  assert.deepEqual(body.messages, [{ role: 'system', content: SYSTEM },
    { role: 'user', content: 'Tell me a story' }]);

  // what the page kept equals what the API answers to the same request
  const ref = await srv.client().chat.completions.create({ model: 'x', messages: body.messages,
    temperature: 0, max_tokens: LONG, ignore_eos: true });
  const [conv] = await conversations(page);
  assert.equal(conv.messages.length, 2);
  assert.equal(conv.messages[1].content, ref.choices[0].message.content);
  assert.ok(ref.choices[0].message.content.length > 0);

  const stats = await page.textContent('.msg.assistant .stats');
  assert.match(stats, new RegExp(`${ref.usage.prompt_tokens} prompt tokens · ${LONG} tokens · [0-9.]+ tok/s`));
  assert.equal((await page.textContent('#conversations .conv.active')).trim().replace(/×$/, ''),
    'Tell me a story');
});

test('Stop aborts the stream and the server cancels the request', async () => {
  const cancelled = 'spindle_requests_finished_total{reason="cancelled"}';
  const before = await waitIdle(srv.base);
  await setSettings(page, { system: SYSTEM, temperature: '0', max_tokens: String(LONGEST),
    extra: '{"ignore_eos": true}' });
  await page.click('#new-chat');
  await send(page, 'A long one, please');
  // some text has come (the waiting cursor is gone)
  await page.waitForFunction(() => {
    const c = document.querySelector('.msg.assistant .content');
    return c && !c.querySelector('.cursor') && c.textContent.trim().length > 0;
  });
  await page.click('#stop');
  await answered(page, 10000);
  const after = await waitIdle(srv.base);
  assert.equal(after[cancelled], before[cancelled] + 1, 'the server cancelled the request');
  assert.equal(after.spindle_kv_blocks_used, 0);
  const generated = after.spindle_generation_tokens_total - before.spindle_generation_tokens_total;
  assert.ok(generated < LONGEST, `stopped before the end (${generated} tokens)`);

  assert.match(await page.textContent('.msg.assistant .stats'), /stopped/);
  const conv = (await conversations(page)).find((c) => c.messages[0].content === 'A long one, please');
  assert.equal(conv.messages[1].stopped, true);
  assert.ok(conv.messages[1].content.length > 0, 'the text so far is kept');
});

test('Regenerate asks again with the same history and replaces the answer', async () => {
  await setSettings(page, { system: SYSTEM, temperature: '0', max_tokens: '24', extra: '{"ignore_eos": true}' });
  await page.click('#new-chat');
  await send(page, 'Once upon a time');
  await answered(page);
  const first = lastChatBody();
  const n = chatRequests().length;
  await page.click('.msg.assistant .regenerate');
  await answered(page);
  assert.equal(chatRequests().length, n + 1, 'one more request');
  assert.deepEqual(lastChatBody().messages, first.messages, 'the old answer is not sent back');
  const conv = (await conversations(page)).find((c) => c.messages[0].content === 'Once upon a time');
  assert.equal(conv.messages.length, 2, 'the answer was replaced, not added');
  const ref = await srv.client().chat.completions.create({ model: 'x', messages: first.messages,
    temperature: 0, max_tokens: 24, ignore_eos: true });
  assert.equal(conv.messages[1].content, ref.choices[0].message.content);
  assert.equal(await page.locator('.msg.assistant').count(), 1);
});

test('the last user message can be edited and sent again', async () => {
  // continues the conversation of the previous test
  await page.click('.msg.user .edit');
  await page.fill('.edit-input', 'Once upon a time, in a castle');
  await page.click('.edit-send');
  await answered(page);
  const body = lastChatBody();
  assert.deepEqual(body.messages, [{ role: 'system', content: SYSTEM },
    { role: 'user', content: 'Once upon a time, in a castle' }]);
  const conv = (await conversations(page)).find((c) => c.messages[0].content.startsWith('Once upon a time, in'));
  assert.equal(conv.messages.length, 2);
  assert.equal(await page.textContent('.msg.user .bubble'), 'Once upon a time, in a castle');
  const ref = await srv.client().chat.completions.create({ model: 'x', messages: body.messages,
    temperature: 0, max_tokens: 24, ignore_eos: true });
  assert.equal(conv.messages[1].content, ref.choices[0].message.content);
});

test('conversations survive a reload; new and delete work', async () => {
  const before = await conversations(page);
  await page.reload();
  await page.waitForSelector('#conversations .conv');
  const titles = await page.locator('#conversations .conv-title').allTextContents();
  assert.equal(titles.length, before.length);
  for (const t of ['Tell me a story', 'A long one, please', 'Once upon a time, in a castle']) {
    assert.ok(titles.includes(t), `${t} in ${titles}`);
  }
  // the conversation open before the reload is open again
  assert.equal(await page.textContent('.msg.user .bubble'), 'Once upon a time, in a castle');
  await page.click('#new-chat');
  assert.equal(await page.locator('.msg').count(), 0);
  await page.click('#conversations .conv-title:text-is("Tell me a story")');
  assert.equal(await page.textContent('.msg.user .bubble'), 'Tell me a story');
  const kept = before.find((c) => c.messages[0].content === 'Tell me a story');
  assert.equal(await page.locator('.msg.assistant').count(), 1);
  assert.ok(kept.messages[1].content.length > 0);

  await page.click('#conversations .conv:has(.conv-title:text-is("A long one, please")) .conv-delete');
  assert.equal(await page.locator('#conversations .conv').count(), before.length - 1);
  await page.reload();
  await page.waitForSelector('#conversations .conv');
  const left = await conversations(page);
  assert.equal(left.length, before.length - 1);
  assert.ok(!left.some((c) => c.messages[0].content === 'A long one, please'));
});

test('reasoning shows in a collapsed block, tool calls as calls', async () => {
  const out = '<think>\nThe user wants the weather in Tokyo.\n</think>\n\n' +
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Tokyo"}}\n</tool_call>';
  await setSettings(page, { extra: JSON.stringify({ tools: qwen3Tools(), spindle_debug_force_output: out }) });
  await page.click('#new-chat');
  await send(page, 'What is the weather in Tokyo?');
  await answered(page);
  const details = page.locator('.msg.assistant details.reasoning');
  assert.equal(await details.count(), 1);
  assert.equal(await details.evaluate((d) => d.open), false, 'collapsed');
  assert.equal((await details.locator('.reasoning-text').textContent()).trim(),
    'The user wants the weather in Tokyo.');
  await details.locator('summary').click();
  assert.equal(await details.evaluate((d) => d.open), true);
  assert.equal(await page.textContent('.msg.assistant .tool-name'), 'Tool call: get_weather');
  assert.deepEqual(JSON.parse(await page.textContent('.msg.assistant .tool-args')), { city: 'Tokyo' });
  assert.match(await page.textContent('.msg.assistant .stats'), /finish: tool_calls/);
  assert.equal((await page.textContent('.msg.assistant .content')).trim(), '');
});

// Hostile model output: HTML, script, a javascript: link, an image, in the
// answer and in the reasoning.
const XSS = '<think>\n<img src=x onerror="window.__xss=\'reasoning\'">\n</think>\n\n' +
  'Look: <img src=x onerror="window.__xss=\'img\'"> and <script>window.__xss=\'script\'</script>\n' +
  '[click me](javascript:window.__xss=\'link\') ![pic](x.png) <b onmouseover="window.__xss=1">b</b>\n\n' +
  '**bold** and math $a_1*b_2$ stays\n\n```html\n<script>alert(1)</script>\n```\n';

async function checkHostile(pg) {
  await setSettings(pg, { extra: JSON.stringify({ spindle_debug_force_output: XSS }) });
  await pg.click('#new-chat');
  await send(pg, 'Say something nasty');
  await answered(pg);
  await pg.locator('.msg.assistant .content a').first().hover(); // what a person does next
  await new Promise((r) => setTimeout(r, 300)); // a failed image load fires onerror by now
  assert.equal(await pg.evaluate(() => window.__xss), undefined, 'no model-written script ran');
  const msgs = pg.locator('#messages');
  assert.equal(await msgs.locator('img, script, iframe, object, embed, svg, b').count(), 0);
  const withHandlers = await msgs.evaluate((m) => [...m.querySelectorAll('*')]
    .filter((e) => [...e.attributes].some((a) => a.name.startsWith('on'))).length);
  assert.equal(withHandlers, 0, 'no element has an event handler attribute');
  const text = await pg.textContent('.msg.assistant .content');
  assert.ok(text.includes('<img src=x onerror="window.__xss=\'img\'">'), text);
  assert.ok(text.includes('<script>window.__xss=\'script\'</script>'), text);
  assert.ok(text.includes('[click me](javascript:window.__xss=\'link\')'), 'a javascript: link stays text');
  assert.ok(text.includes('!pic'), 'an image is a link, not an image');
  const hrefs = await pg.locator('.msg.assistant .content a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  assert.ok(hrefs.every((h) => !/^javascript:/i.test(h || '')), `links: ${hrefs}`);
  assert.equal(await pg.textContent('.msg.assistant strong'), 'bold');
  assert.equal(await pg.textContent('.msg.assistant .math'), '$a_1*b_2$');
  assert.equal((await pg.textContent('.msg.assistant .reasoning-text')).trim(),
    '<img src=x onerror="window.__xss=\'reasoning\'">');
  // the code block shows the code as text and copies it
  assert.equal(await pg.textContent('.msg.assistant .code-bar span'), 'html');
  assert.equal(await pg.textContent('.msg.assistant .code-block code'), '<script>alert(1)</script>\n');
  await pg.click('.msg.assistant .code-block .copy');
  assert.equal(await pg.evaluate(() => navigator.clipboard.readText()), '<script>alert(1)</script>\n');
}

test('model output cannot inject HTML or run script, and is shown as text', async () => {
  await checkHostile(page);
  // again without the page's Content-Security-Policy: the sanitizing alone holds
  const open = await launch('nocsp', { bypassCSP: true, permissions: ['clipboard-read', 'clipboard-write'] });
  try {
    const pg = await open.ctx.newPage();
    await pg.goto(`${srv.base}/`);
    await checkHostile(pg);
  } finally {
    await open.close();
  }
});

test('phone width: the conversations are a drawer; dark and light follow the system', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.emulateMedia({ colorScheme: 'dark' });
  // the sidebar slides off screen
  await page.waitForFunction(() => document.getElementById('sidebar').getBoundingClientRect().right <= 0);
  assert.ok(await page.isVisible('#menu'));
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'no sideways scroll');
  const send = await page.locator('#send').boundingBox();
  assert.ok(send.x + send.width <= 390);
  await page.click('#menu');
  await page.waitForFunction(() => document.getElementById('sidebar').getBoundingClientRect().left >= 0);
  await page.click('#conversations .conv-title:text-is("Tell me a story")');
  await page.waitForSelector('#scrim', { state: 'hidden' });
  assert.equal(await page.textContent('.msg.user .bubble'), 'Tell me a story');
  const bg = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(await bg(), 'rgb(21, 23, 28)');
  await page.emulateMedia({ colorScheme: 'light' });
  assert.equal(await bg(), 'rgb(255, 255, 255)');
  await page.setViewportSize({ width: 1280, height: 800 });
  assert.deepEqual(pageErrors, []);
});

test('with --api-key the page asks for the key and keeps it for the tab only', async () => {
  const keyed = await startServer(['--model', model, '--api-key', 'sekrit-key']);
  const pg = await browser.ctx.newPage();
  try {
    await pg.goto(`${keyed.base}/`);
    await pg.waitForSelector('#key-dialog[open]');
    await pg.keyboard.press('Escape'); // dismissed: the model label brings it back
    await pg.waitForSelector('#key-dialog', { state: 'hidden' });
    await pg.click('#model');
    await pg.waitForSelector('#key-dialog[open]');
    await pg.fill('#key-form [name="key"]', 'wrong');
    await pg.click('#key-ok');
    await pg.waitForFunction(() => document.getElementById('key-error').textContent.includes('refused'));
    assert.ok(await pg.isVisible('#key-dialog'));
    await pg.fill('#key-form [name="key"]', 'sekrit-key');
    await pg.click('#key-ok');
    await pg.waitForFunction((id) => document.getElementById('model').textContent === id, SERVED_ID());
    assert.equal(await pg.isVisible('#key-dialog'), false);
    assert.equal(await pg.evaluate(() => sessionStorage.getItem('spindle.apiKey')), 'sekrit-key');

    await setSettings(pg, { max_tokens: '8', extra: '{"ignore_eos": true}' });
    let auth = null;
    pg.on('request', (r) => {
      if (r.url().endsWith('/v1/chat/completions')) auth = r.headers().authorization;
    });
    await send(pg, 'Hello');
    await answered(pg);
    assert.equal(auth, 'Bearer sekrit-key');
    assert.match(await pg.textContent('.msg.assistant .stats'), /8 tokens/);
    const local = await pg.evaluate(() => JSON.stringify({ ...localStorage }));
    assert.ok(!local.includes('sekrit'), 'the key is not in localStorage');
  } finally {
    await pg.close();
    await keyed.stop();
  }
});

test('--no-webui serves no page', async () => {
  const bare = await startServer(['--model', model, '--no-webui']);
  try {
    assert.equal((await fetch(`${bare.base}/`)).status, 404);
    assert.equal((await fetch(`${bare.base}/webui/app.js`)).status, 404);
    assert.match(bare.log(), /chat page: off \(--no-webui\)/);
  } finally {
    await bare.stop();
  }
});
