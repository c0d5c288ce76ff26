// Model output cannot inject HTML or script; an error in the stream is shown
// and Retry asks again.
import { assert, ask, lastAnswer, openPage, step, waitFinished, withPage } from './lib.mjs';

await withPage({}, async (page) => {
  await openPage(page);

  step('HTML and a javascript: link in the answer show as text');
  await ask(page, 'Show me something dangerous');
  await waitFinished(page);
  const answer = lastAnswer(page).locator('.answer');
  const text = await answer.textContent();
  console.log(`  answer text: ${JSON.stringify(text)}`);
  assert.ok(text.includes('<img src=x onerror=alert(1)>'), 'the img tag is shown as text');
  assert.ok(text.includes('<script>alert(2)</script>'), 'the script tag is shown as text');
  assert.equal(await page.locator('.answer img, .answer script, .answer iframe').count(), 0, 'no element was injected');
  assert.equal(await page.locator('.answer a[href^="javascript" i]').count(), 0, 'no javascript: link');
  assert.ok(text.includes('click me'), 'the javascript: link text stays');
  assert.equal(await answer.locator('a[href="https://example.com/x.png"]').textContent(), 'a picture',
    'an image is a link to it, never loaded');
  const safe = answer.locator('a[href="https://example.com/docs"]');
  assert.equal(await safe.count(), 1, 'an https link stays a link');
  assert.equal(await safe.getAttribute('rel'), 'noopener noreferrer');
  assert.equal(await safe.getAttribute('target'), '_blank');
  for (const link of await answer.locator('a').all()) {
    assert.match(await link.getAttribute('href'), /^(https?:|mailto:)/, 'only http(s) and mailto links');
  }

  step('an error event during the stream is shown');
  await ask(page, 'Now fail');
  await waitFinished(page);
  const error = lastAnswer(page).locator('.error');
  assert.ok(await error.isVisible(), 'the error is visible');
  assert.equal(await error.getAttribute('role'), 'alert');
  assert.equal(await error.locator('.error-code').textContent(), 'upstream_rejected');
  assert.match(await error.locator('.error-message').textContent(), /401|invalid api key/i);
  assert.equal(await page.locator('#status').textContent(), 'The answer failed.');

  step('Retry asks the same question again, from the keyboard');
  await lastAnswer(page).locator('button.retry').focus();
  await page.keyboard.press('Enter');
  await waitFinished(page);
  assert.equal(await lastAnswer(page).locator('.answer').textContent(), 'Recovered.\n');
  assert.equal(await lastAnswer(page).locator('.error').isVisible(), false);
  assert.equal(await page.locator('.message.assistant').count(), 2, 'the failed answer was replaced');
  assert.equal(await page.locator('.message.user').count(), 2, 'the question was not repeated');
});
console.log('ok');
