// The server's OpenAI-compatible API, as the page uses it. Paths are
// relative, so the page also works behind a proxy that serves it under a
// prefix. The API key (--api-key) lives in sessionStorage only: it is gone
// when the tab closes and never written with the conversations.
import { createParser } from 'eventsource-parser';

const KEY = 'spindle.apiKey';

export const apiKey = {
  get: () => sessionStorage.getItem(KEY) || '',
  set: (k) => (k ? sessionStorage.setItem(KEY, k) : sessionStorage.removeItem(KEY)),
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(json) {
  const h = {};
  if (json) h['Content-Type'] = 'application/json';
  const k = apiKey.get();
  if (k) h.Authorization = `Bearer ${k}`;
  return h;
}

async function failure(res) {
  let msg = `HTTP ${res.status}`;
  try {
    const body = await res.json();
    if (body?.error?.message) msg = body.error.message;
  } catch {
    /* not JSON: the status says enough */
  }
  return new ApiError(res.status, msg);
}

// The served model id (GET v1/models).
export async function fetchModel() {
  const res = await fetch('v1/models', { headers: headers(false) });
  if (!res.ok) throw await failure(res);
  const body = await res.json();
  return body.data?.[0]?.id || '';
}

// Streams one chat completion. onDelta gets each choice delta, onUsage the
// final usage. Resolves with the finish reason; an abort (signal) rejects
// with an AbortError, which closes the connection: the server cancels the
// request.
export async function streamChat(body, { signal, onDelta, onUsage }) {
  const res = await fetch('v1/chat/completions', {
    method: 'POST',
    headers: headers(true),
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    signal,
  });
  if (!res.ok) throw await failure(res);
  let finish = null;
  let error = null;
  const parser = createParser({
    onEvent(ev) {
      if (ev.data === '[DONE]') return;
      const chunk = JSON.parse(ev.data);
      if (chunk.error) error = new ApiError(500, chunk.error.message || 'stream error');
      if (chunk.usage) onUsage(chunk.usage);
      for (const c of chunk.choices || []) {
        if (c.delta) onDelta(c.delta);
        if (c.finish_reason) finish = c.finish_reason;
      }
    },
  });
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parser.feed(value);
  }
  if (error) throw error;
  return finish;
}
