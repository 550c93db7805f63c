// Debian's headless Chromium driven by playwright-core, for the chat page's
// tests (webui.test.mjs) and its screenshots (webui_screenshots.mjs); and the
// model they chat with.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { MODEL } from './helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../..');
// run.sh builds its fixture model in the build dir: write next to it
export const BUILD = process.env.SPINDLE_FIXTURE ? path.dirname(path.resolve(MODEL)) : path.join(REPO, 'build');
const SHARED = process.env.SPINDLE_FIXTURE
  ? path.resolve(process.env.SPINDLE_FIXTURE, '../..')
  : process.env.SP_SHARED_DIR || path.resolve(REPO, '../shared');
const TOKENIZERS = process.env.SP_TOKENIZERS_DIR || path.join(REPO, 'build/tokenizers');

export const CHROMIUM = process.env.SPINDLE_CHROMIUM || '/usr/bin/chromium';
// No network but the page's own server, nothing kept between runs.
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// A browser with a fresh profile in build/ (removed by close()).
export async function launch(name, options = {}) {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: scripts/install-deps.sh installs Debian's chromium`);
  }
  const dir = path.join(BUILD, 'webui-profiles', `${name}-${process.pid}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 800 },
    ...options,
  });
  return {
    ctx,
    async close() {
      await ctx.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Qwen 3's real tokenizer and chat template (so <think> and <tool_call>
// output is parsed as a real Qwen 3 model's would be) over the qwen3
// fixture's random layers: make_tools_model.mjs, as tools.test.mjs uses.
export function qwen3Model() {
  const out = path.join(BUILD, 'e2e-tools-model');
  if (!fs.existsSync(path.join(TOKENIZERS, 'qwen3/tokenizer.json'))) {
    execFileSync('bash', [path.join(REPO, 'scripts/fetch-tokenizers.sh'), TOKENIZERS], { stdio: 'inherit' });
  }
  execFileSync('node', [path.join(here, 'make_tools_model.mjs'), path.join(SHARED, 'fixtures/qwen3'),
    path.join(TOKENIZERS, 'qwen3'), out], { stdio: 'inherit' });
  return out;
}

export function qwen3Tools() {
  const fixture = JSON.parse(fs.readFileSync(path.join(SHARED, 'fixtures/tokenizers/qwen3.json'), 'utf8'));
  return fixture.chat.find((c) => c.name === 'tool_result' && c.add_generation_prompt).tools;
}

// Page helpers: the settings dialog, sending, waiting for the answer.
export async function setSettings(page, fields) {
  await page.click('#open-settings');
  for (const name of ['system', 'temperature', 'top_p', 'max_tokens', 'seed', 'extra']) {
    await page.fill(`#settings-form [name="${name}"]`, fields[name] ?? '');
  }
  await page.click('#settings-save');
  await page.waitForSelector('#settings', { state: 'hidden' });
}

export async function send(page, text) {
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
}

// Waits until no answer streams (the Send button is back).
export async function answered(page, timeout = 60000) {
  await page.waitForSelector('#stop', { state: 'hidden', timeout });
  await page.waitForSelector('#send', { state: 'visible', timeout });
}

export const conversations = (page) =>
  page.evaluate(() => JSON.parse(localStorage.getItem('spindle.conversations') || '[]'));
