// The official `openai` npm package, unchanged, against ragstream's /v1.
// Run by tests/clients.rs, which scripts the upstream for each question in
// turn: direct streamed, knowledge-base streamed, direct, knowledge-base.
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const URL = process.env.RAGSTREAM_URL;
if (!URL) {
  console.error('RAGSTREAM_URL is not set: run this through `cargo test --test clients`');
  process.exit(2);
}
const client = new OpenAI({ baseURL: `${URL}/v1`, apiKey: 'unused', maxRetries: 0 });

const models = await client.models.list();
assert.deepEqual(models.data.map((m) => m.id), ['ragstream']);

async function streamed(question) {
  const stream = await client.chat.completions.create({
    model: 'ragstream',
    stream: true,
    stream_options: { include_usage: true },
    messages: [{ role: 'user', content: question }],
  });
  let text = '';
  let finish;
  let usage;
  let sources = [];
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    if (chunk.ragstream) sources = sources.concat(chunk.ragstream.sources);
    const choice = chunk.choices[0];
    if (!choice) continue;
    assert.equal(choice.delta.tool_calls, undefined);
    text += choice.delta.content ?? '';
    finish = choice.finish_reason ?? finish;
  }
  return { text, finish, usage, sources };
}

console.log('- a direct question, streamed');
let got = await streamed('你好');
assert.equal(got.text, '你好！有什么可以帮你？');
assert.equal(got.finish, 'stop');
assert.equal(got.usage.total_tokens, 15);

console.log('- a knowledge-base question, streamed');
got = await streamed('我家孩子总是打自己的头，怎么办？');
assert.equal(got.text, '先保证安全。[1]');
assert.equal(got.sources[0].id, 'self-injury');

console.log('- a direct question');
let completion = await client.chat.completions.create({
  model: 'ragstream',
  messages: [{ role: 'user', content: '你好' }],
});
assert.equal(completion.choices[0].message.content, '你好！有什么可以帮你？');
assert.equal(completion.choices[0].finish_reason, 'stop');

console.log('- a knowledge-base question');
completion = await client.chat.completions.create({
  model: 'ragstream',
  messages: [{ role: 'user', content: '我家孩子总是打自己的头，怎么办？' }],
});
assert.equal(completion.choices[0].message.content, '先保证安全。[1]');
assert.equal(completion.ragstream.sources[0].id, 'self-injury');

console.log('- another model is not found');
await assert.rejects(
  client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'q' }] }),
  (err) => err instanceof OpenAI.NotFoundError && err.code === 'model_not_found',
);
console.log('ok');
