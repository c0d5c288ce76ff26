// The chat page: conversations, the composer, and an answer streamed into
// the message being written. Plain ES modules, no build step.

import { ApiError, streamChat } from '/chat.js';
import { DEFAULT_LIMITS, trimHistory } from '/history.js';
import { t, translate } from '/i18n.js';
import { render } from '/markdown.js';
import * as store from '/store.js';

const $ = (id) => document.getElementById(id);
const ui = {
  list: $('messages'), empty: $('empty'), status: $('status'), form: $('composer'),
  input: $('input'), send: $('send'), stop: $('stop'), picker: $('conversations'),
  fresh: $('new'), keyDialog: $('key-dialog'), keyForm: $('key-form'), keyInput: $('key-input'),
  keyWhy: $('key-why'), keyCancel: $('key-cancel'),
};

/** The most conversations kept in storage; older ones are dropped. */
const MAX_CONVERSATIONS = 50;

/** The server's request limits (GET /api/limits), or the defaults if it does not say. */
const limitsReady = fetch('/api/limits')
  .then((r) => (r.ok ? r.json() : null))
  .then((l) => ({ ...DEFAULT_LIMITS, ...l }))
  .catch(() => DEFAULT_LIMITS);
let conversations = store.loadConversations();
let current = null;
/** The answer being written: { controller, message, view }, or null. */
let running = null;

// ---- conversations -------------------------------------------------------

function newConversation() {
  return { id: crypto.randomUUID?.() ?? String(Date.now() + Math.random()), created: Date.now(), messages: [] };
}

function title(conversation) {
  const first = conversation.messages.find((m) => m.role === 'user');
  if (!first) return t('untitled');
  const text = first.content.replace(/\s+/g, ' ').trim();
  return Array.from(text).length > 40 ? `${Array.from(text).slice(0, 40).join('')}…` : text;
}

function save() {
  if (current.messages.length && !conversations.includes(current)) conversations.unshift(current);
  conversations = conversations.slice(0, MAX_CONVERSATIONS);
  store.saveConversations(conversations);
  store.saveCurrent(current.id);
  renderPicker();
}

function renderPicker() {
  ui.picker.replaceChildren();
  const shown = conversations.includes(current) ? conversations : [current, ...conversations];
  for (const conversation of shown) {
    const option = new Option(title(conversation), conversation.id);
    option.selected = conversation === current;
    ui.picker.append(option);
  }
}

function open(conversation) {
  stop();
  current = conversation;
  // An answer that was streaming when the page went away did not finish.
  for (const m of current.messages) if (m.state === 'streaming') m.state = 'stopped';
  store.saveCurrent(current.id);
  renderPicker();
  renderMessages();
}

// ---- messages ------------------------------------------------------------

function renderMessages() {
  ui.list.replaceChildren(...current.messages.map((m) => messageView(m).root));
  ui.empty.hidden = current.messages.length > 0;
  refreshActions();
}

/** The elements of one message; assistant messages keep theirs for updates. */
function messageView(message) {
  const root = document.createElement('li');
  root.className = `message ${message.role}`;
  const who = document.createElement('p');
  who.className = 'who';
  who.textContent = message.role === 'user' ? t('you') : t('assistant');
  root.append(who);
  if (message.role === 'user') {
    const text = document.createElement('p');
    text.className = 'text';
    text.textContent = message.content;
    root.append(text);
    return { root };
  }
  const view = { root, message };
  view.reasoning = document.createElement('details');
  view.reasoning.className = 'reasoning';
  const summary = document.createElement('summary');
  summary.textContent = t('reasoning');
  view.reasoningText = document.createElement('div');
  view.reasoningText.className = 'reasoning-text';
  view.reasoning.append(summary, view.reasoningText);
  view.answer = document.createElement('div');
  view.answer.className = 'answer markdown';
  view.sources = document.createElement('section');
  view.sources.className = 'sources';
  const heading = document.createElement('h2');
  heading.textContent = t('sources');
  view.sourceList = document.createElement('ol');
  view.sources.append(heading, view.sourceList);
  view.note = document.createElement('p');
  view.note.className = 'note';
  view.error = document.createElement('div');
  view.error.className = 'error';
  view.actions = document.createElement('div');
  view.actions.className = 'actions';
  view.copy = button(t('copy'), 'copy', () => copy(view));
  view.retry = button(t('retry'), 'retry', retry);
  view.actions.append(view.copy, view.retry);
  root.append(view.reasoning, view.answer, view.sources, view.note, view.error, view.actions);
  root.view = view;
  paint(view);
  paintSources(view);
  paintEnd(view);
  return view;
}

function button(label, className, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = className;
  b.textContent = label;
  b.addEventListener('click', onClick);
  return b;
}

/** Renders the answer and reasoning text (called at most once per frame while streaming). */
function paint(view) {
  const { message } = view;
  view.answer.innerHTML = render(message.content || '');
  view.reasoning.hidden = !message.reasoning;
  view.reasoningText.textContent = message.reasoning || '';
}

function paintSources(view) {
  const sources = view.message.sources || [];
  view.sources.hidden = sources.length === 0;
  view.sourceList.replaceChildren(...sources.map((source) => {
    const item = document.createElement('li');
    item.value = source.n;
    item.className = 'source';
    const details = document.createElement('details');
    const summary = document.createElement('summary');
    const number = document.createElement('span');
    number.className = 'n';
    number.textContent = `[${source.n}]`;
    const name = document.createElement('span');
    name.className = 'title';
    name.textContent = source.title || source.id || '';
    summary.append(number, ' ', name);
    const snippet = document.createElement('p');
    snippet.className = 'snippet';
    snippet.textContent = source.snippet || '';
    details.append(summary, snippet);
    if (source.source) {
      const origin = document.createElement('p');
      origin.className = 'origin';
      origin.textContent = source.source;
      details.append(origin);
    }
    item.append(details);
    return item;
  }));
}

/** The message's end state: busy flag, stop note, error, actions. */
function paintEnd(view, announce = false) {
  const { message } = view;
  const busy = message.state === 'streaming';
  view.root.setAttribute('aria-busy', String(busy));
  view.note.hidden = message.state !== 'stopped';
  view.note.textContent = t('stoppedNote');
  const error = message.error;
  view.error.hidden = !error;
  view.error.replaceChildren();
  if (error) {
    if (announce) view.error.setAttribute('role', 'alert');
    const text = document.createElement('p');
    text.className = 'error-message';
    text.textContent = error.message;
    const code = document.createElement('p');
    code.className = 'error-code';
    code.textContent = error.code;
    view.error.append(text, code);
  }
  view.actions.hidden = busy;
  view.copy.hidden = !message.content;
}

/** Retry is offered on the last answer only, and not while one is being written. */
function refreshActions() {
  const views = [...ui.list.querySelectorAll('.message.assistant')].map((el) => el.view);
  views.forEach((view, i) => { view.retry.hidden = running !== null || i !== views.length - 1; });
}

// ---- asking --------------------------------------------------------------

function ask(question) {
  if (running || !question.trim()) return;
  current.messages.push({ role: 'user', content: question });
  ui.input.value = '';
  answer();
}

function retry() {
  if (running) return;
  const last = current.messages.at(-1);
  if (last?.role === 'assistant') current.messages.pop();
  if (current.messages.at(-1)?.role === 'user') answer();
}

/** Appends an empty answer to the conversation and streams it. */
function answer() {
  const message = { role: 'assistant', content: '', reasoning: '', sources: [], error: null, state: 'streaming' };
  const asked = [...current.messages];
  current.messages.push(message);
  save();
  renderMessages();
  const view = ui.list.lastElementChild.view;
  view.root.scrollIntoView({ block: 'end' });
  stream(view, asked);
}

async function stream(view, asked) {
  const { message } = view;
  const controller = new AbortController();
  running = { controller, view };
  setRunning(true);
  setStatus(t('waiting'));
  let frame = 0;
  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; paint(view); follow(); });
  };
  const onEvent = (name, data) => {
    switch (name) {
      case 'delta':
        if (!message.content) setStatus(t('answering'));
        message.content += data.text ?? '';
        schedule();
        break;
      case 'reasoning': message.reasoning += data.text ?? ''; setStatus(t('thinking')); schedule(); break;
      case 'status': setStatus(statusText(data)); break;
      case 'sources': message.sources.push(...(data.sources ?? [])); paintSources(view); break;
      case 'error': message.error = { code: data.code ?? 'error', message: data.message ?? t('failed') }; break;
      default: break;
    }
  };
  let outcome;
  try {
    const history = trimHistory(asked, await limitsReady);
    for (;;) {
      try {
        const final = await streamChat({ messages: history, key: store.loadKey(), signal: controller.signal, onEvent });
        if (!final) message.error = { code: 'disconnected', message: t('cutOff') };
        outcome = message.error ? 'error' : 'done';
        break;
      } catch (err) {
        if (err instanceof ApiError && err.status === 401 && !controller.signal.aborted) {
          const hadKey = Boolean(store.loadKey());
          store.saveKey(null);
          const key = await askKey(hadKey);
          if (key) { store.saveKey(key); continue; }
          message.error = { code: err.code, message: t('keyMissing') };
          outcome = 'error';
          break;
        }
        throw err;
      }
    }
  } catch (err) {
    if (controller.signal.aborted) {
      outcome = 'stopped';
    } else if (err instanceof ApiError) {
      message.error = { code: err.code, message: friendly(err) };
      outcome = 'error';
    } else {
      message.error = { code: 'network', message: t('network') };
      outcome = 'error';
    }
  }
  if (frame) cancelAnimationFrame(frame);
  message.state = outcome;
  running = null;
  paint(view);
  paintEnd(view, true);
  setRunning(false);
  refreshActions();
  setStatus(outcome === 'done' ? t('done') : outcome === 'stopped' ? t('stopped') : t('failed'));
  save();
}

function statusText(data) {
  if (data.stage === 'searching') return data.message || t('searching');
  if (data.stage === 'answering') return t('answering');
  if (data.stage === 'retrieval_only') return t('retrievalOnly');
  return data.message || '';
}

function friendly(err) {
  if (err.code === 'overloaded') return `${t('overloaded')} (${err.message})`;
  if (err.code === 'shutting_down') return `${t('shuttingDown')} (${err.message})`;
  return err.message;
}

function stop() {
  running?.controller.abort();
}

/** Swaps Send and Stop. Focus stays in the composer, so the next question can be typed meanwhile. */
function setRunning(on) {
  const stopHadFocus = document.activeElement === ui.stop;
  ui.send.hidden = on;
  ui.stop.hidden = !on;
  if (!on && (stopHadFocus || document.activeElement === document.body)) ui.input.focus();
}

function setStatus(text) {
  if (ui.status.textContent !== text) ui.status.textContent = text;
}

/** Keeps the newest text in view while the reader is at the bottom. */
function follow() {
  const doc = document.scrollingElement;
  if (doc.scrollHeight - doc.scrollTop - doc.clientHeight < 160) doc.scrollTop = doc.scrollHeight;
}

async function copy(view) {
  const text = view.message.content;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = document.createElement('textarea');
    area.value = text;
    area.className = 'offscreen';
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
  view.copy.textContent = t('copied');
  setTimeout(() => { view.copy.textContent = t('copy'); }, 1500);
}

/** Asks for an API key in a modal dialog; resolves with it, or null if cancelled. */
function askKey(refused) {
  ui.keyWhy.textContent = refused ? t('keyWrong') : t('keyWhy');
  ui.keyInput.value = '';
  return new Promise((resolve) => {
    const done = (value) => {
      ui.keyForm.removeEventListener('submit', onSubmit);
      ui.keyCancel.removeEventListener('click', onCancel);
      ui.keyDialog.removeEventListener('cancel', onCancel);
      if (ui.keyDialog.open) ui.keyDialog.close();
      resolve(value);
    };
    const onSubmit = (e) => { e.preventDefault(); done(ui.keyInput.value.trim() || null); };
    const onCancel = (e) => { e.preventDefault(); done(null); };
    ui.keyForm.addEventListener('submit', onSubmit);
    ui.keyCancel.addEventListener('click', onCancel);
    ui.keyDialog.addEventListener('cancel', onCancel);
    ui.keyDialog.showModal();
    ui.keyInput.focus();
  });
}

// ---- wiring --------------------------------------------------------------

ui.form.addEventListener('submit', (e) => { e.preventDefault(); ask(ui.input.value); });
ui.input.addEventListener('keydown', (e) => {
  // Enter sends; Shift+Enter is a new line; Enter that ends an IME composition is not a send.
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
    e.preventDefault();
    ask(ui.input.value);
  }
});
ui.stop.addEventListener('click', stop);
ui.fresh.addEventListener('click', () => { open(newConversation()); ui.input.focus(); });
ui.picker.addEventListener('change', () => {
  const chosen = conversations.find((c) => c.id === ui.picker.value);
  if (chosen) open(chosen);
});
window.addEventListener('pagehide', () => { if (running) running.view.message.state = 'stopped'; save(); });

translate(document);
const saved = store.loadCurrent();
open(conversations.find((c) => c.id === saved) ?? newConversation());
document.body.dataset.ready = 'true';
ui.input.focus();
