// useChat's own transport against ragstream's /api/ui/chat: DefaultChatTransport
// sends the body useChat sends, and readUIMessageStream builds the assistant
// message exactly as useChat does, with ai@5.0.0 (`ai5`) and the latest `ai`.
// Run by tests/clients.rs, which scripts the upstream for each question in turn:
// a knowledge-base answer, then a failing model, for each package.
import assert from 'node:assert/strict';

const URL = process.env.RAGSTREAM_URL;
if (!URL) {
  console.error('RAGSTREAM_URL is not set: run this through `cargo test --test clients`');
  process.exit(2);
}

const user = (id, text) => ({ id, role: 'user', parts: [{ type: 'text', text }] });

/** Sends `messages` and returns the last assistant message and any errors. */
async function ask(ai, messages) {
  const transport = new ai.DefaultChatTransport({ api: `${URL}/api/ui/chat` });
  const stream = await transport.sendMessages({
    chatId: 'chat-1',
    messages,
    trigger: 'submit-message',
    messageId: undefined,
    abortSignal: undefined,
  });
  const errors = [];
  let message;
  for await (const m of ai.readUIMessageStream({ stream, onError: (e) => errors.push(String(e?.message ?? e)) })) {
    message = m;
  }
  return { message, errors };
}

for (const name of ['ai5', 'ai']) {
  const ai = await import(name);
  console.log(`- ${name}: a knowledge-base question`);
  const { message, errors } = await ask(ai, [user('u1', '我家孩子总是打自己的头，怎么办？')]);
  assert.deepEqual(errors, []);
  assert.equal(message.role, 'assistant');
  assert.match(message.id, /^msg-/);
  const tool = message.parts.find((p) => p.type === 'tool-autism_expert');
  assert.ok(tool, `a tool part in ${JSON.stringify(message.parts)}`);
  assert.equal(tool.state, 'output-available');
  assert.deepEqual(tool.input, { question: '孩子自伤怎么办' });
  assert.equal(tool.output.hits > 0, true);
  const sources = message.parts.filter((p) => p.type === 'source-document');
  assert.equal(sources[0].sourceId, 'self-injury');
  assert.equal(sources[0].mediaType, 'text/plain');
  const text = message.parts.filter((p) => p.type === 'text').map((p) => p.text).join('');
  assert.equal(text, '先保证安全。[1]');
  assert.ok(message.parts.filter((p) => p.type === 'text').every((p) => p.state === 'done'));

  console.log(`- ${name}: a follow-up whose model call fails`);
  const failed = await ask(ai, [
    user('u1', '我家孩子总是打自己的头，怎么办？'),
    message,
    user('u2', '然后呢？'),
  ]);
  assert.equal(failed.errors.length, 1, `one error, got ${JSON.stringify(failed.errors)}`);
  assert.match(failed.errors[0], /400/);
}
console.log('ok');
