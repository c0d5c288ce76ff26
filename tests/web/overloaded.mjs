// Errors before any stream are shown clearly: a JSON 503 `overloaded`, and a
// server the browser cannot reach.
import { assert, ask, lastAnswer, openPage, screenshot, step, waitFinished, withPage } from './lib.mjs';

await withPage({}, async (page, context) => {
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

  step('offline: the page says it could not reach the server');
  await context.setOffline(true);
  await ask(page, 'Still there?');
  await page.waitForFunction(() => document.querySelectorAll('.message.assistant').length === 2);
  await waitFinished(page);
  const offline = lastAnswer(page).locator('.error');
  assert.equal(await offline.locator('.error-code').textContent(), 'network');
  assert.match(await offline.locator('.error-message').textContent(), /Could not reach the server/);
  await context.setOffline(false);
});
console.log('ok');
