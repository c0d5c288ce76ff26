// With API keys configured, the page (served without a key) asks for one when
// /api/chat answers 401, asks again when the key is refused, keeps the
// accepted key in the browser, and sends it from then on.
import { assert, ask, lastAnswer, openPage, step, waitFinished, withPage } from './lib.mjs';

const KEY = process.env.RAGSTREAM_TEST_KEY;
assert.ok(KEY, 'RAGSTREAM_TEST_KEY is set by tests/web.rs');

await withPage({}, async (page) => {
  step('the page and its scripts load without a key');
  await openPage(page);

  step('the first question asks for a key');
  await ask(page, 'Who needs a key?');
  const dialog = page.locator('#key-dialog');
  await dialog.waitFor({ state: 'visible' });
  assert.match(await page.locator('#key-why').textContent(), /needs an API key/);
  assert.ok(await page.locator('#key-input').evaluate((el) => el === document.activeElement), 'the key field has focus');

  step('a wrong key is refused and asked for again');
  await page.locator('#key-input').fill('wrong-key-wrong-key-wrong');
  await page.locator('#key-input').press('Enter');
  await page.waitForFunction(() => /refused/.test(document.getElementById('key-why').textContent));
  assert.ok(await dialog.isVisible());

  step('the right key answers the question');
  await page.locator('#key-input').fill(KEY);
  await page.locator('#key-save').click();
  await waitFinished(page);
  assert.equal(await lastAnswer(page).locator('.answer').textContent(), 'Keyed answer.\n');
  assert.equal(await page.evaluate(() => JSON.parse(localStorage.getItem('ragstream.apiKey'))), KEY);

  step('after a reload the kept key is sent without asking');
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await ask(page, 'Again?');
  await waitFinished(page);
  assert.equal(await dialog.isVisible(), false);
  assert.equal(await lastAnswer(page).locator('.answer').textContent(), 'Second keyed answer.\n');
});
console.log('ok');
