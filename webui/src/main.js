// The chat page served at / by `spindle serve` (bundled into the binary at
// build time by webui/build.mjs). Talks to the same server's
// /v1/chat/completions (streaming) and /v1/models.
import './style.css';
import { ApiError, apiKey, fetchModel, streamChat } from './api.js';
import {
  loadConversations, saveConversations, newConversation, titleOf, loadSettings, saveSettings,
  settingsToRequest, DEFAULT_SETTINGS,
} from './store.js';
import { renderConversations, messageView, fillAssistant, editInPlace, welcomeView } from './view.js';

const $ = (id) => document.getElementById(id);
const CURRENT = 'spindle.current';

const state = {
  convs: loadConversations(),
  currentId: localStorage.getItem(CURRENT),
  settings: loadSettings(),
  model: '',
  busy: null, // {controller, conv, msg, node} while an answer streams
};

const current = () => state.convs.find((c) => c.id === state.currentId) || null;

function save() {
  saveConversations(state.convs);
  if (state.currentId) localStorage.setItem(CURRENT, state.currentId);
  else localStorage.removeItem(CURRENT);
}

let noticeTimer = null;
function notice(text) {
  const n = $('notice');
  n.textContent = text;
  n.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (n.hidden = true), 5000);
}

// ---- rendering ------------------------------------------------------------

function renderSidebar() {
  renderConversations($('conversations'), state.convs, state.currentId, {
    select(id) {
      state.currentId = id;
      save();
      showSidebar(false);
      render();
    },
    remove(id) {
      if (state.busy?.conv.id === id) state.busy.controller.abort();
      state.convs = state.convs.filter((c) => c.id !== id);
      if (state.currentId === id) state.currentId = null;
      save();
      render();
    },
  });
}

const nearBottom = (box) => box.scrollHeight - box.scrollTop - box.clientHeight < 80;

function renderMessages() {
  const box = $('messages');
  const conv = current();
  if (!conv || !conv.messages.length) {
    box.replaceChildren(welcomeView(state.model));
    return;
  }
  const msgs = conv.messages;
  const lastOf = (role) => msgs.map((m) => m.role).lastIndexOf(role);
  const busy = !!state.busy;
  const nodes = msgs.map((m, i) => {
    const streaming = state.busy?.msg === m;
    const node = messageView(m, i, {
      last: i === lastOf(m.role) && i >= msgs.length - 2,
      busy,
      streaming,
      actions: { regenerate, edit },
    });
    if (streaming) state.busy.node = node;
    return node;
  });
  box.replaceChildren(...nodes);
  box.scrollTop = box.scrollHeight;
}

function render() {
  renderSidebar();
  renderMessages();
  $('send').hidden = !!state.busy;
  $('stop').hidden = !state.busy;
}

// Redraws the streaming answer at most once a frame.
let frame = 0;
function scheduleStreamUpdate() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    const b = state.busy;
    if (!b?.node || !b.node.isConnected) return;
    const box = $('messages');
    const stick = nearBottom(box);
    fillAssistant(b.node, b.msg, true);
    if (stick) box.scrollTop = box.scrollHeight;
  });
}

// ---- talking to the server -----------------------------------------------

// IMAGE INPUT HOOK (issue 20): once the server takes images, a user message
// with attachments becomes [{type: 'text', text}, {type: 'image_url',
// image_url: {url: 'data:...'}}] here, and the attach control goes in the
// composer (index.html). Until then a message is its text.
function buildUserContent(msg) {
  return msg.content;
}

function apiMessages(history) {
  const out = [];
  if (state.settings.system.trim()) out.push({ role: 'system', content: state.settings.system });
  for (const m of history) {
    if (m.role === 'user') out.push({ role: 'user', content: buildUserContent(m) });
    else if (m.content) out.push({ role: 'assistant', content: m.content });
  }
  return out;
}

function applyDelta(msg, d) {
  const r = d.reasoning_content ?? d.reasoning;
  if (r) msg.reasoning += r;
  if (d.content) msg.content += d.content;
  for (const tc of d.tool_calls || []) {
    const i = tc.index ?? msg.toolCalls.length;
    msg.toolCalls[i] ??= { name: '', arguments: '' };
    if (tc.function?.name) msg.toolCalls[i].name += tc.function.name;
    if (tc.function?.arguments) msg.toolCalls[i].arguments += tc.function.arguments;
  }
}

// Streams an answer to the conversation as it stands.
async function generate(conv) {
  let fields;
  try {
    fields = settingsToRequest(state.settings);
  } catch (e) {
    notice(`Settings: ${e.message}`);
    return;
  }
  const history = conv.messages.slice();
  const msg = { role: 'assistant', content: '', reasoning: '', toolCalls: [], stats: null };
  conv.messages.push(msg);
  conv.title = titleOf(conv);
  conv.updated = Date.now();
  const controller = new AbortController();
  state.busy = { controller, conv, msg, node: null };
  save();
  render();
  const t0 = performance.now();
  let tFirst = null;
  let tLast = null;
  let usage = null;
  let finish = null;
  try {
    finish = await streamChat(
      { model: state.model || 'default', messages: apiMessages(history), ...fields },
      {
        signal: controller.signal,
        onDelta(d) {
          tLast = performance.now();
          tFirst ??= tLast;
          applyDelta(msg, d);
          scheduleStreamUpdate();
        },
        onUsage(u) {
          usage = u;
        },
      });
  } catch (e) {
    if (e.name === 'AbortError') msg.stopped = true;
    else msg.error = e.message || String(e);
    if (e instanceof ApiError && e.status === 401) askKey('The server refused the key.');
  }
  msg.stats = {
    ttftMs: tFirst !== null ? tFirst - t0 : undefined,
    finish: finish || undefined,
  };
  if (usage) {
    msg.stats.promptTokens = usage.prompt_tokens;
    msg.stats.completionTokens = usage.completion_tokens;
    // tokens after the first, over the time they took to arrive
    if (usage.completion_tokens > 1 && tLast > tFirst) {
      msg.stats.tokensPerSecond = (usage.completion_tokens - 1) / ((tLast - tFirst) / 1000);
    }
  }
  state.busy = null;
  conv.updated = Date.now();
  save();
  render();
}

async function send(text) {
  if (state.busy || !text.trim()) return;
  let conv = current();
  if (!conv) {
    conv = newConversation();
    state.convs.push(conv);
    state.currentId = conv.id;
  }
  conv.messages.push({ role: 'user', content: text });
  await generate(conv);
}

async function regenerate() {
  const conv = current();
  if (state.busy || !conv || conv.messages.at(-1)?.role !== 'assistant') return;
  conv.messages.pop();
  await generate(conv);
}

async function edit(index) {
  const conv = current();
  if (state.busy || !conv || conv.messages[index]?.role !== 'user') return;
  const node = $('messages').querySelector(`article[data-index="${index}"]`);
  const text = await editInPlace(node, conv.messages[index].content);
  if (text === null || state.busy || current() !== conv) {
    renderMessages();
    return;
  }
  conv.messages.splice(index);
  conv.messages.push({ role: 'user', content: text });
  await generate(conv);
}

// ---- the API key (spindle serve --api-key) --------------------------------

function askKey(why) {
  const dlg = $('key-dialog');
  const err = $('key-error');
  err.textContent = why || '';
  err.hidden = !why;
  if (!dlg.open) dlg.showModal();
}

$('key-form').addEventListener('submit', (e) => {
  const key = new FormData(e.target).get('key').trim();
  apiKey.set(key);
  e.target.reset();
  connect();
});

// the key dialog was dismissed: the model label opens it again
$('model').addEventListener('click', () => {
  if ($('model').classList.contains('needs-key')) askKey('');
});

async function connect() {
  try {
    state.model = await fetchModel();
    $('model').textContent = state.model;
    $('model').classList.remove('offline', 'needs-key');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      $('model').textContent = 'API key needed';
      $('model').classList.add('needs-key');
      askKey(apiKey.get() ? 'The server refused this key.' : '');
    } else {
      $('model').textContent = 'server unreachable';
      $('model').classList.add('offline');
    }
  }
  if (!current()?.messages.length) renderMessages();
}

// ---- settings ----------------------------------------------------------------

function fillSettingsForm(s) {
  const f = $('settings-form');
  for (const k of Object.keys(DEFAULT_SETTINGS)) f.elements[k].value = s[k] ?? '';
  $('settings-error').hidden = true;
}

function readSettingsForm() {
  const f = $('settings-form');
  const s = {};
  for (const k of Object.keys(DEFAULT_SETTINGS)) s[k] = f.elements[k].value;
  return s;
}

$('open-settings').addEventListener('click', () => {
  fillSettingsForm(state.settings);
  showSidebar(false);
  $('settings').showModal();
});
$('settings-reset').addEventListener('click', () => fillSettingsForm(DEFAULT_SETTINGS));
$('settings-save').addEventListener('click', (e) => {
  const s = readSettingsForm();
  try {
    settingsToRequest(s);
  } catch (err) {
    e.preventDefault(); // keep the dialog open
    $('settings-error').textContent = err.message;
    $('settings-error').hidden = false;
    return;
  }
  state.settings = s;
  saveSettings(s);
});

// ---- composer, sidebar, keyboard -------------------------------------------

const input = $('input');

function autosize() {
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
}

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  if (state.busy || !input.value.trim()) return;
  const text = input.value;
  input.value = '';
  autosize();
  send(text);
});
input.addEventListener('input', autosize);
input.addEventListener('keydown', (e) => {
  // Enter sends, Shift+Enter is a new line (and an IME's Enter is its own)
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $('composer').requestSubmit();
  }
});
$('stop').addEventListener('click', () => state.busy?.controller.abort());
$('new-chat').addEventListener('click', () => {
  state.currentId = null;
  save();
  showSidebar(false);
  render();
  input.focus();
});

function showSidebar(on) {
  document.body.classList.toggle('sidebar-open', on);
  $('scrim').hidden = !on;
}
$('menu').addEventListener('click', () => showSidebar(!document.body.classList.contains('sidebar-open')));
$('scrim').addEventListener('click', () => showSidebar(false));

// another tab changed the conversations
window.addEventListener('storage', (e) => {
  if (e.key !== 'spindle.conversations' || state.busy) return;
  state.convs = loadConversations();
  render();
});

render();
connect();
input.focus();
