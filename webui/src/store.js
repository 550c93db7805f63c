// Conversations and settings, kept in this browser's localStorage.
//   conversation: {id, title, updated, messages: [message]}
//   message: {role: 'user', content}
//          | {role: 'assistant', content, reasoning, toolCalls: [{name, arguments}],
//             stats: {promptTokens, completionTokens, tokensPerSecond, ttftMs, finish},
//             stopped, error}
const CONVS = 'spindle.conversations';
const SETTINGS = 'spindle.settings';

function load(key, fallback) {
  try {
    const v = JSON.parse(localStorage.getItem(key));
    return v ?? fallback;
  } catch {
    return fallback;
  }
}

export function loadConversations() {
  const list = load(CONVS, []);
  return Array.isArray(list) ? list.filter((c) => c && c.id && Array.isArray(c.messages)) : [];
}

export function saveConversations(list) {
  try {
    localStorage.setItem(CONVS, JSON.stringify(list));
  } catch (e) {
    console.warn('spindle: could not save the conversations', e); // quota: keep going in memory
  }
}

export function newConversation() {
  const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  return { id, title: '', updated: Date.now(), messages: [] };
}

export function titleOf(conv) {
  const first = conv.messages.find((m) => m.role === 'user');
  const t = (first?.content || '').replace(/\s+/g, ' ').trim();
  return t ? (t.length > 48 ? `${t.slice(0, 47)}…` : t) : 'New chat';
}

// Empty strings mean "the server's default": such fields are not sent.
export const DEFAULT_SETTINGS = {
  system: '',
  temperature: '',
  top_p: '',
  max_tokens: '',
  seed: '',
  extra: '', // JSON object merged into each request (e.g. chat_template_kwargs)
};

export function loadSettings() {
  return { ...DEFAULT_SETTINGS, ...load(SETTINGS, {}) };
}

export function saveSettings(s) {
  localStorage.setItem(SETTINGS, JSON.stringify(s));
}

// The request fields the settings ask for; throws on invalid input, naming
// the field.
export function settingsToRequest(s) {
  const out = {};
  const num = (name, int) => {
    const v = String(s[name] ?? '').trim();
    if (!v) return;
    const n = Number(v);
    if (!Number.isFinite(n) || (int && !Number.isInteger(n))) {
      throw new Error(`${name} must be ${int ? 'an integer' : 'a number'}`);
    }
    out[name] = n;
  };
  num('temperature', false);
  num('top_p', false);
  num('max_tokens', true);
  num('seed', true);
  const extra = String(s.extra ?? '').trim();
  if (extra) {
    let obj;
    try {
      obj = JSON.parse(extra);
    } catch (e) {
      throw new Error(`extra request fields: not JSON (${e.message})`);
    }
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) {
      throw new Error('extra request fields: must be a JSON object');
    }
    Object.assign(out, obj);
  }
  return out;
}
