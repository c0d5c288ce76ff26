// POST /api/chat and its named SSE events (docs/protocol.md), read with fetch
// and a stream reader because EventSource cannot POST.

/** An error the server answered before the stream: HTTP status, code, message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Posts `messages` and calls `onEvent(name, data)` for each event until the
 * stream ends. Resolves with the final event (`done` or `error`), or null
 * when the connection closed without one. Throws ApiError for a JSON error
 * before the stream, and the fetch's own error when aborted or offline.
 */
export async function streamChat({ messages, key, signal, onEvent }) {
  const headers = { 'content-type': 'application/json', accept: 'text/event-stream' };
  if (key) headers.authorization = `Bearer ${key}`;
  const response = await fetch('/api/chat', {
    method: 'POST', headers, body: JSON.stringify({ messages }), signal,
  });
  if (!response.ok || !response.body) throw await apiError(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  let final = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    for (const { event, data } of parser.push(value)) {
      let payload;
      try { payload = JSON.parse(data); } catch { continue; }
      onEvent(event, payload);
      if (event === 'done' || event === 'error') final = { event, data: payload };
    }
  }
  return final;
}

async function apiError(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  const error = body?.error ?? {};
  return new ApiError(response.status, error.code ?? `http_${response.status}`,
    error.message ?? `${response.status} ${response.statusText}`);
}

/**
 * The text/event-stream format: lines end in \n, \r\n or \r; `event:` names
 * the event, `data:` lines are joined with \n, a blank line dispatches, and
 * lines starting with `:` are comments.
 */
export class SseParser {
  constructor() {
    this.buffer = '';
    this.event = '';
    this.data = [];
  }

  /** Feeds decoded text; returns the events it completed. */
  push(text) {
    this.buffer += text;
    const out = [];
    let start = 0;
    for (;;) {
      const match = /\r\n|\r|\n/g;
      match.lastIndex = start;
      const found = match.exec(this.buffer);
      // A lone \r at the end may be the first half of \r\n: wait for more.
      if (!found || (found[0] === '\r' && found.index === this.buffer.length - 1)) break;
      this.line(this.buffer.slice(start, found.index), out);
      start = found.index + found[0].length;
    }
    this.buffer = this.buffer.slice(start);
    return out;
  }

  line(line, out) {
    if (line === '') {
      if (this.data.length) out.push({ event: this.event || 'message', data: this.data.join('\n') });
      this.event = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
  }
}
