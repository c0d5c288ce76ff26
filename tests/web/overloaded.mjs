// A JSON error before the stream (503 overloaded) is shown clearly.
import { assert, ask, lastAnswer, openPage, screenshot, step, waitFinished, withPage } from './lib.mjs';

await withPage({}, async (page) => {
  await openPage(page);
  step('every stream slot is taken: the page says the server is busy');
  await ask(page, 'Are you there?');
  await waitFinished(page);
  const error = lastAnswer(page).locator('.error');
  assert.ok(await error.isVisible());
  assert.equal(await error.locator('.error-code').textContent(), 'overloaded');
  assert.match(await error.locator('.error-message').textContent(), /The server is busy right now/);
  assert.equal(await page.locator('#status').textContent(), 'The answer failed.');
  assert.ok(await lastAnswer(page).locator('button.retry').isVisible(), 'Retry is offered');
  await screenshot(page, 'desktop-overloaded');
});
console.log('ok');
