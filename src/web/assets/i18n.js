// Interface text in English and Chinese, chosen from the browser's languages.

const TEXT = {
  en: {
    conversations: 'Conversations',
    new: 'New conversation',
    empty: 'Ask a question to start.',
    question: 'Your question',
    placeholder: 'Ask a question (Enter sends, Shift+Enter adds a line)',
    send: 'Send',
    stop: 'Stop',
    you: 'You',
    assistant: 'Answer',
    reasoning: 'Thinking',
    sources: 'Sources',
    copy: 'Copy',
    copied: 'Copied',
    retry: 'Retry',
    thinking: 'Thinking…',
    searching: 'Consulting the knowledge base…',
    answering: 'Writing the answer…',
    retrievalOnly: 'Answering from the knowledge base…',
    waiting: 'Waiting for the answer…',
    done: 'Answer complete.',
    stopped: 'Stopped.',
    stoppedNote: 'Stopped before the answer was complete.',
    failed: 'The answer failed.',
    untitled: 'New conversation',
    overloaded: 'The server is busy right now. Retry in a moment.',
    shuttingDown: 'The server is restarting. Retry in a moment.',
    network: 'Could not reach the server. Check the connection and retry.',
    cutOff: 'The connection closed before the answer was complete.',
    keyTitle: 'API key',
    keyWhy: 'This server needs an API key. It is kept in this browser only.',
    keyWrong: 'The server refused this key. Enter another one.',
    keyLabel: 'Key',
    keyMissing: 'No API key was given, so the server did not answer.',
    cancel: 'Cancel',
    save: 'Save',
  },
  zh: {
    conversations: '对话',
    new: '新对话',
    empty: '输入问题开始对话。',
    question: '你的问题',
    placeholder: '输入问题（Enter 发送，Shift+Enter 换行）',
    send: '发送',
    stop: '停止',
    you: '你',
    assistant: '回答',
    reasoning: '思考过程',
    sources: '参考来源',
    copy: '复制',
    copied: '已复制',
    retry: '重试',
    thinking: '正在思考…',
    searching: '正在查询知识库…',
    answering: '正在生成回答…',
    retrievalOnly: '正在从知识库中回答…',
    waiting: '正在等待回答…',
    done: '回答完成。',
    stopped: '已停止。',
    stoppedNote: '回答未完成即已停止。',
    failed: '回答失败。',
    untitled: '新对话',
    overloaded: '服务器繁忙，请稍后重试。',
    shuttingDown: '服务器正在重启，请稍后重试。',
    network: '无法连接服务器，请检查网络后重试。',
    cutOff: '回答未完成，连接已断开。',
    keyTitle: 'API 密钥',
    keyWhy: '此服务器需要 API 密钥。密钥只保存在本浏览器中。',
    keyWrong: '服务器拒绝了这个密钥，请输入另一个。',
    keyLabel: '密钥',
    keyMissing: '没有提供 API 密钥，服务器未回答。',
    cancel: '取消',
    save: '保存',
  },
};

/** The first of the browser's languages we have text for, else English. */
export function pickLanguage(languages) {
  for (const tag of languages || []) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (base in TEXT) return base;
  }
  return 'en';
}

const nav = globalThis.navigator;
export const lang = pickLanguage(nav?.languages?.length ? nav.languages : [nav?.language]);

/** The interface text `key` in the page's language. */
export function t(key) {
  return TEXT[lang][key] ?? TEXT.en[key] ?? key;
}

/** Fills `data-i18n` (text) and `data-i18n-placeholder` elements of `root`. */
export function translate(root) {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
}
