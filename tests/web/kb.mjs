// A knowledge-base question in a Chinese browser at phone width: the status,
// then the numbered sources, then the answer; each source opens to its snippet.
import { assert, lastAnswer, openPage, recordTimeline, screenshot, step, timeline, waitFinished, withPage } from './lib.mjs';

await withPage({ locale: 'zh-CN', viewport: { width: 390, height: 780 } }, async (page) => {
  await openPage(page);
  assert.equal(await page.locator('#send').textContent(), '发送', 'Chinese interface for a Chinese browser');
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'zh-CN');

  step('ask with the Send button');
  await page.locator('#input').fill('自闭症孩子自伤怎么办？');
  await recordTimeline(page);
  await page.locator('#send').click();
  await waitFinished(page);

  step('status, then sources, then answer');
  const events = await timeline(page);
  console.log(`  timeline: ${JSON.stringify(events.map((e) => `${e.kind}:${String(e.value).slice(0, 16)}`))}`);
  const first = (test) => events.findIndex(test);
  const searching = first((e) => e.kind === 'status' && e.value === '正在查询知识库…');
  const answering = first((e) => e.kind === 'status' && e.value === '正在生成回答…');
  const sources = first((e) => e.kind === 'sources' && e.value > 0);
  const answer = first((e) => e.kind === 'answer' && e.value);
  assert.ok(searching >= 0, 'the operator\'s status message (status_message of the tool) was shown');
  assert.ok(answering >= 0, 'the page\'s own text for the answering stage was shown');
  assert.ok(searching < sources, 'status before sources');
  assert.ok(sources < answer, 'sources before the answer');
  assert.equal(await page.locator('#status').textContent(), '回答完成。');
  assert.equal(await page.locator('#status').getAttribute('role'), 'status', 'a polite live region of its own');
  assert.equal(await page.locator('[aria-live]').count(), 1, 'the growing answer is not a live region');

  step('sources are numbered as in the answer and open to their snippet');
  const message = lastAnswer(page);
  assert.match(await message.locator('.answer').textContent(), /\[1\]/);
  const count = await message.locator('.source').count();
  assert.ok(count >= 1, 'at least one source');
  const source = message.locator('.source').first();
  assert.equal(await source.locator('.n').textContent(), '[1]');
  assert.equal(await source.getAttribute('value'), '1');
  assert.match(await source.locator('.title').textContent(), /自伤/);
  assert.equal(await source.locator('.snippet').isVisible(), false, 'snippets start closed');
  await source.locator('summary').click();
  assert.ok(await source.locator('.snippet').isVisible(), 'the snippet opens');
  assert.ok((await source.locator('.snippet').textContent()).length > 10);

  step('usable at phone width: nothing wider than the screen');
  const [scroll, width] = await page.evaluate(() => [document.scrollingElement.scrollWidth, window.innerWidth]);
  assert.ok(scroll <= width, `page is ${scroll}px wide on a ${width}px screen`);
  await page.evaluate(() => window.scrollTo(0, 0));
  await screenshot(page, 'phone-kb-answer');
});
console.log('ok');
