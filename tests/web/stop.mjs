// Stop ends the answer in the page, keeps what arrived, and the server
// closes its connection to the model (the scripted upstream sees it).
import { assert, ask, eventually, lastAnswer, openPage, step, upstreamOpen, waitFinished, withPage } from './lib.mjs';

await withPage({}, async (page) => {
  await openPage(page);
  await ask(page, 'Tell me a long story');
  step('the answer starts and the upstream stream is open');
  await page.waitForFunction(() => document.querySelector('.message.assistant .answer')?.textContent.includes('Once'));
  assert.ok(await page.locator('#stop').isVisible(), 'Stop is offered while the answer is written');
  assert.equal(await page.locator('#send').isVisible(), false);
  assert.equal(await upstreamOpen(), 1);
  assert.ok(await page.locator('#input').evaluate((el) => el === document.activeElement),
    'focus stays in the composer while the answer is written');

  step('Stop');
  await page.locator('#stop').click();
  await waitFinished(page);
  assert.match(await lastAnswer(page).locator('.answer').textContent(), /Once upon a time/);
  assert.ok(await lastAnswer(page).locator('.note').isVisible(), 'the answer is marked as stopped');
  assert.equal(await page.locator('#status').textContent(), 'Stopped.');
  assert.ok(await page.locator('#send').isVisible(), 'Send is back');

  step('the upstream sees its connection closed while the page is still open');
  await eventually('the upstream stream to close', async () => (await upstreamOpen()) === 0);
});
console.log('ok');
