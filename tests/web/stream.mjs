// A direct answer streams into the page, renders as Markdown, and the
// conversation goes on, survives a reload, and can be left and reopened.
import { assert, ask, lastAnswer, openPage, recordTimeline, screenshot, step, timeline, waitFinished, withPage } from './lib.mjs';

const FIRST = 'Hello! Here is **bold** text, a list:\n\n- one\n- two\n\nand `code`.';

await withPage({}, async (page, context) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  const response = await openPage(page);
  assert.match(response.headers()['content-security-policy'], /default-src 'self'/);
  assert.equal(await page.locator('#send').textContent(), 'Send', 'English interface for an English browser');

  step('Shift+Enter adds a line, Enter sends');
  await page.locator('#input').fill('Hello');
  await page.locator('#input').press('Shift+Enter');
  await page.locator('#input').pressSequentially('there');
  assert.equal(await page.locator('#input').inputValue(), 'Hello\nthere');
  assert.equal(await page.locator('.message').count(), 0, 'Shift+Enter must not send');
  await recordTimeline(page);
  await page.locator('#input').press('Enter');
  await waitFinished(page);

  step('the answer was seen growing before it was complete');
  const events = await timeline(page);
  const answers = events.filter((e) => e.kind === 'answer' && e.value).map((e) => e.value);
  const final = answers.at(-1);
  const partial = answers.slice(0, -1);
  console.log(`  answer states: ${JSON.stringify(answers)}`);
  assert.ok(partial.length >= 3, `at least 3 intermediate states, saw ${partial.length}`);
  for (const state of partial) {
    assert.ok(state.startsWith('Hello!') && state !== final, `"${state}" is a stage of the answer`);
  }
  assert.ok(events.some((e) => e.kind === 'busy' && e.value === 'true'), 'aria-busy while written');
  const statuses = events.filter((e) => e.kind === 'status').map((e) => e.value);
  for (const expected of ['Waiting for the answer…', 'Thinking…', 'Writing the answer…', 'Answer complete.']) {
    assert.ok(statuses.includes(expected), `status "${expected}" shown; saw ${JSON.stringify(statuses)}`);
  }
  assert.equal(await lastAnswer(page).getAttribute('aria-busy'), 'false');

  step('the reasoning is there, collapsed, and not part of the answer');
  const reasoning = lastAnswer(page).locator('details.reasoning');
  assert.ok(await reasoning.isVisible());
  assert.equal(await reasoning.evaluate((el) => el.open), false, 'collapsed');
  assert.equal(await reasoning.locator('summary').textContent(), 'Thinking');
  assert.equal(await reasoning.locator('.reasoning-text').isVisible(), false);
  await reasoning.locator('summary').click();
  assert.equal(await reasoning.locator('.reasoning-text').textContent(), 'The user greets me. I will greet back.');
  assert.ok(!(await lastAnswer(page).locator('.answer').textContent()).includes('greet'));

  step('Markdown is rendered');
  const answer = lastAnswer(page).locator('.answer');
  assert.equal(await answer.locator('strong').textContent(), 'bold');
  assert.equal(await answer.locator('li').count(), 2);
  assert.equal(await answer.locator('code').textContent(), 'code');
  assert.equal(await page.locator('#status').textContent(), 'Answer complete.');

  step('Copy puts the answer\'s Markdown on the clipboard');
  await lastAnswer(page).locator('button.copy').click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), FIRST);

  step('a second question carries the conversation');
  await ask(page, 'And then?');
  await waitFinished(page);
  assert.equal(await lastAnswer(page).locator('.answer').textContent(), 'Then the second answer.\n');
  assert.equal(await page.locator('.message').count(), 4);
  assert.equal(await page.locator('.message.assistant button.retry:visible').count(), 1, 'retry on the last answer only');
  await screenshot(page, 'desktop-conversation');

  step('reload keeps the conversation');
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  assert.equal(await page.locator('.message').count(), 4);
  assert.equal(await page.locator('.message.user .text').first().textContent(), 'Hello\nthere');
  assert.equal(await page.locator('.message.assistant .answer strong').first().textContent(), 'bold');

  step('new conversation, then back to the first from the list');
  await page.locator('#new').click();
  assert.equal(await page.locator('.message').count(), 0);
  assert.ok(await page.locator('#empty').isVisible());
  const options = await page.locator('#conversations option').allTextContents();
  assert.ok(options.includes('Hello there'), `listed: ${JSON.stringify(options)}`);
  await page.locator('#conversations').selectOption({ label: 'Hello there' });
  assert.equal(await page.locator('.message').count(), 4);
});
console.log('ok');
