// The conversation sent with each question, trimmed to the server's limits
// (GET /api/limits: server.max_messages, max_message_chars, max_body_bytes).

export const DEFAULT_LIMITS = { max_messages: 100, max_message_chars: 32000, max_body_bytes: 1048576 };

/**
 * The newest messages that fit: at most `max_messages`, each earlier message
 * cut to `max_message_chars` characters, starting with a user message, and a
 * JSON body within `max_body_bytes`. The last message (the question) is kept
 * whole: if it alone is too long, the server's error says so.
 */
export function trimHistory(messages, limits = DEFAULT_LIMITS) {
  const turns = messages
    .filter((m) => (m.role === 'user' || m.role === 'assistant') && m.content && m.content.trim())
    .map((m, i, all) => ({
      role: m.role,
      content: i === all.length - 1 ? m.content : cut(m.content, limits.max_message_chars),
    }));
  let kept = turns.slice(-Math.max(1, limits.max_messages));
  const encoder = new TextEncoder();
  const size = (list) => encoder.encode(JSON.stringify({ messages: list })).length;
  while (kept.length > 1 && (kept[0].role !== 'user' || size(kept) > limits.max_body_bytes)) {
    kept = kept.slice(1);
  }
  return kept;
}

function cut(text, chars) {
  const points = Array.from(text);
  return points.length <= chars ? text : points.slice(0, chars).join('');
}
