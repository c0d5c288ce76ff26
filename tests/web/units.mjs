// Unit tests of the page's pure modules (no browser): the SSE parser, history
// trimming, and the choice of language. Run by tests/web.rs with node:test.
import assert from 'node:assert/strict';
import test from 'node:test';
import { SseParser } from '../../src/web/assets/chat.js';
import { trimHistory } from '../../src/web/assets/history.js';
import { pickLanguage } from '../../src/web/assets/i18n.js';

const parseAll = (pieces) => {
  const parser = new SseParser();
  return pieces.flatMap((piece) => parser.push(piece));
};

test('named events split anywhere arrive whole', () => {
  const text = 'event: delta\ndata: {"text":"你好"}\n\n: keep-alive\n\nevent: done\ndata: {}\n\n';
  const whole = parseAll([text]);
  assert.deepEqual(whole, [{ event: 'delta', data: '{"text":"你好"}' }, { event: 'done', data: '{}' }]);
  for (let i = 1; i < text.length; i += 1) {
    assert.deepEqual(parseAll([text.slice(0, i), text.slice(i)]), whole, `split at ${i}`);
  }
});

test('CRLF and CR line ends, multi-line data, and no space after the colon', () => {
  assert.deepEqual(parseAll(['event:status\r\ndata:a\r', '\ndata: b\r\r', '\n']), [{ event: 'status', data: 'a\nb' }]);
});

test('an event without data is not dispatched, and a nameless one is a message', () => {
  assert.deepEqual(parseAll(['event: x\n\ndata: 1\n\n']), [{ event: 'message', data: '1' }]);
});

const turns = (n) => Array.from({ length: n }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `m${i}` }));
const limits = { max_messages: 100, max_message_chars: 1000, max_body_bytes: 1 << 20 };

test('at most max_messages, starting with a question', () => {
  const kept = trimHistory(turns(7), { ...limits, max_messages: 4 });
  assert.deepEqual(kept.map((m) => m.content), ['m4', 'm5', 'm6']);
});

test('earlier messages are cut to max_message_chars characters, the question is not', () => {
  const messages = [{ role: 'user', content: '自'.repeat(10) }, { role: 'assistant', content: '闭'.repeat(10) },
    { role: 'user', content: '症'.repeat(10) }];
  const kept = trimHistory(messages, { ...limits, max_message_chars: 4 });
  assert.deepEqual(kept.map((m) => m.content), ['自自自自', '闭闭闭闭', '症'.repeat(10)]);
});

test('the oldest messages go until the body fits max_body_bytes', () => {
  const messages = turns(5).map((m) => ({ ...m, content: m.content.padEnd(100, 'x') }));
  const kept = trimHistory(messages, { ...limits, max_body_bytes: 400 });
  assert.ok(new TextEncoder().encode(JSON.stringify({ messages: kept })).length <= 400);
  assert.equal(kept[0].role, 'user');
  assert.equal(kept.at(-1).content, messages.at(-1).content);
  assert.ok(kept.length < messages.length);
});

test('empty answers (a failed or stopped one) are left out', () => {
  const kept = trimHistory([{ role: 'user', content: 'q1' }, { role: 'assistant', content: '' },
    { role: 'user', content: 'q2' }], limits);
  assert.deepEqual(kept.map((m) => m.content), ['q1', 'q2']);
});

test('the first of the browser languages the page speaks wins', () => {
  assert.equal(pickLanguage(['zh-CN', 'en']), 'zh');
  assert.equal(pickLanguage(['fr-FR', 'zh-TW', 'en']), 'zh');
  assert.equal(pickLanguage(['en-GB', 'zh-CN']), 'en');
  assert.equal(pickLanguage(['de']), 'en');
  assert.equal(pickLanguage([]), 'en');
});
