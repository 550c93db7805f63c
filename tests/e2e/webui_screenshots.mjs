// Takes the chat page's screenshots in docs/webui/ (light and dark, desktop
// and phone widths). Not a test; run by hand after changing the page:
//
//   SPINDLE_BIN=build/release/spindle SPINDLE_MODEL=unused node tests/e2e/webui_screenshots.mjs docs/webui
//
// The model has random weights, so the answers shown are set through the
// server's test hook (SPINDLE_TEST_HOOKS=1, "spindle_debug_force_output"):
// they still stream from the server token by token and the page renders
// them as it renders any answer.
import fs from 'node:fs';
import path from 'node:path';
import { startServer } from './helpers.mjs';
import { launch, qwen3Model, setSettings, send, answered } from './webui_browser.mjs';

const out = path.resolve(process.argv[2] || 'docs/webui');
fs.mkdirSync(out, { recursive: true });

const CHATS = [
  ['Write a haiku about autumn',
    'Crisp leaves drift and fall,\ngolden light on quiet paths —\nthe year exhales slow.'],
  ['How do I reverse a list in Python?',
    '<think>\nA short answer with an example; mention both ways.\n</think>\n\n' +
    'Use slicing for a new list, or `list.reverse()` to change it in place:\n\n' +
    '```python\nitems = [1, 2, 3]\nprint(items[::-1])  # [3, 2, 1]\nitems.reverse()     # items is now [3, 2, 1]\n```\n\n' +
    '- `items[::-1]` returns a **new** list\n- `items.reverse()` returns `None`\n\nBoth take $O(n)$ time.'],
];

const model = qwen3Model();
process.env.SPINDLE_TEST_HOOKS = '1';
const srv = await startServer(['--model', model, '--alias', 'qwen3-demo']);
delete process.env.SPINDLE_TEST_HOOKS;
const browser = await launch('shots');
try {
  const page = await browser.ctx.newPage();
  await page.goto(`${srv.base}/`);
  for (const [question, answer] of CHATS) {
    await setSettings(page, { extra: JSON.stringify({ spindle_debug_force_output: answer }) });
    await page.click('#new-chat');
    await send(page, question);
    await answered(page);
  }
  await page.click('.msg.assistant details.reasoning summary'); // open, to show it
  await page.click('#input');
  const sizes = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };
  for (const [name, viewport] of Object.entries(sizes)) {
    for (const scheme of ['light', 'dark']) {
      await page.setViewportSize(viewport);
      await page.emulateMedia({ colorScheme: scheme });
      await page.waitForTimeout(300); // the drawer's slide
      const file = path.join(out, `${name}-${scheme}.png`);
      await page.screenshot({ path: file });
      console.log(file);
    }
  }
} finally {
  await browser.close();
  await srv.stop();
}
