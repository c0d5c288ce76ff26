// Asks the questions of QUESTIONS (a JSON list) one after another, each after
// the previous answer finished; tests/web.rs checks what the upstream received.
import { assert, ask, openPage, step, waitFinished, withPage } from './lib.mjs';

const questions = JSON.parse(process.env.QUESTIONS || '[]');
assert.ok(questions.length > 0, 'QUESTIONS lists the questions');

await withPage({}, async (page) => {
  await openPage(page);
  for (const question of questions) {
    step(`ask ${JSON.stringify(question)}`);
    await ask(page, question);
    await page.waitForFunction((n) => document.querySelectorAll('.message.assistant').length === n,
      questions.indexOf(question) + 1);
    await waitFinished(page);
    assert.equal(await page.locator('.message.assistant .error:visible').count(), 0, 'no error');
  }
});
console.log('ok');
