// DOM for the conversation list and the messages. Model text reaches the
// page only as textContent or through renderMarkdown (sanitized).
import { renderMarkdown } from './markdown.js';
import { titleOf } from './store.js';

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function button(label, className, onClick) {
  const b = el('button', className, label);
  b.type = 'button';
  b.addEventListener('click', onClick);
  return b;
}

// The sidebar: newest first; actions {select(id), remove(id)}.
export function renderConversations(nav, convs, currentId, actions) {
  nav.replaceChildren();
  const sorted = [...convs].sort((a, b) => b.updated - a.updated);
  for (const c of sorted) {
    const row = el('div', c.id === currentId ? 'conv active' : 'conv');
    row.dataset.id = c.id;
    const open = button(titleOf(c), 'conv-title', () => actions.select(c.id));
    open.title = titleOf(c);
    const del = button('\u00d7', 'conv-delete icon', () => actions.remove(c.id));
    del.setAttribute('aria-label', 'Delete conversation');
    row.append(open, del);
    nav.append(row);
  }
}

function statsText(msg) {
  const s = msg.stats;
  const parts = [];
  if (msg.stopped) parts.push('stopped');
  if (s) {
    if (s.promptTokens !== undefined) parts.push(`${s.promptTokens} prompt tokens`);
    if (s.completionTokens !== undefined) parts.push(`${s.completionTokens} tokens`);
    if (s.tokensPerSecond) parts.push(`${s.tokensPerSecond.toFixed(1)} tok/s`);
    if (s.ttftMs !== undefined) parts.push(`first token ${Math.round(s.ttftMs)} ms`);
    if (s.finish && s.finish !== 'stop') parts.push(`finish: ${s.finish}`);
  }
  return parts.join(' · ');
}

function toolCallView(call) {
  const box = el('div', 'tool-call');
  box.append(el('div', 'tool-name', `Tool call: ${call.name || '(unnamed)'}`));
  let args = call.arguments || '';
  try {
    args = JSON.stringify(JSON.parse(args), null, 2);
  } catch {
    /* still streaming, or not JSON: shown as it came */
  }
  box.append(el('pre', 'tool-args', args));
  return box;
}

// Fills an assistant message's element (created by messageView); called
// again for every frame while the answer streams, so the reasoning block
// keeps its open/closed state.
export function fillAssistant(node, msg, streaming) {
  let reasoning = node.querySelector(':scope > details.reasoning');
  if (msg.reasoning) {
    if (!reasoning) {
      reasoning = el('details', 'reasoning');
      reasoning.append(el('summary'), el('div', 'reasoning-text'));
      node.prepend(reasoning);
    }
    const thinking = streaming && !msg.content && !msg.toolCalls?.length;
    reasoning.querySelector('summary').textContent = thinking ? 'Thinking…' : 'Reasoning';
    reasoning.querySelector('.reasoning-text').textContent = msg.reasoning;
  }
  const content = node.querySelector(':scope > .content');
  content.replaceChildren(renderMarkdown(msg.content || ''));
  if (streaming && !msg.content && !msg.reasoning && !msg.toolCalls?.length) {
    content.append(el('span', 'cursor', '…'));
  }
  node.querySelector(':scope > .tools').replaceChildren(...(msg.toolCalls || []).map(toolCallView));
  const err = node.querySelector(':scope > .error');
  err.textContent = msg.error || '';
  err.hidden = !msg.error;
  node.querySelector(':scope > .meta .stats').textContent = streaming ? '' : statsText(msg);
}

// One message. ctx: {last: is it the last of its role, busy, actions:
// {regenerate(), edit(index)}}.
export function messageView(msg, index, ctx) {
  const node = el('article', `msg ${msg.role}`);
  node.dataset.index = String(index);
  if (msg.role === 'user') {
    node.append(el('div', 'bubble', msg.content));
    const meta = el('div', 'meta');
    if (ctx.last && !ctx.busy) meta.append(button('Edit', 'subtle small edit', () => ctx.actions.edit(index)));
    node.append(meta);
    return node;
  }
  node.append(el('div', 'content markdown'), el('div', 'tools'), el('div', 'error'));
  const meta = el('div', 'meta');
  meta.append(el('span', 'stats'));
  if (ctx.last && !ctx.busy) {
    meta.append(button('Regenerate', 'subtle small regenerate', () => ctx.actions.regenerate()));
  }
  node.append(meta);
  fillAssistant(node, msg, ctx.streaming);
  return node;
}

// The last user message, turned into an editor: resolves with the new text,
// or null when cancelled.
export function editInPlace(node, text) {
  return new Promise((resolve) => {
    const box = el('div', 'edit-box');
    const ta = el('textarea', 'edit-input');
    ta.value = text;
    ta.rows = Math.min(10, text.split('\n').length + 1);
    const done = (v) => resolve(v);
    const send = button('Send', 'small edit-send', () => done(ta.value.trim() ? ta.value : null));
    const cancel = button('Cancel', 'subtle small edit-cancel', () => done(null));
    ta.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        send.click();
      } else if (e.key === 'Escape') cancel.click();
    });
    const row = el('div', 'buttons');
    row.append(cancel, send);
    box.append(ta, row);
    node.replaceChildren(box);
    ta.focus();
  });
}

export function welcomeView(model) {
  const w = el('div', 'welcome');
  w.append(el('h1', '', 'Spindle'));
  w.append(el('p', '', model ? `Chatting with ${model}.` : 'Connecting to the server…'));
  return w;
}
