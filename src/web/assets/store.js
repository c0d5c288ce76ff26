// Conversations and the API key, kept in the browser's localStorage.

const CONVERSATIONS = 'ragstream.conversations';
const CURRENT = 'ragstream.current';
const KEY = 'ragstream.apiKey';

function read(name, fallback) {
  try {
    const value = JSON.parse(localStorage.getItem(name));
    return value ?? fallback;
  } catch {
    return fallback;
  }
}

function write(name, value) {
  try {
    localStorage.setItem(name, JSON.stringify(value));
  } catch {
    // Storage full or disabled: the page still works, it just forgets on reload.
  }
}

/** Every saved conversation, newest first. */
export function loadConversations() {
  const list = read(CONVERSATIONS, []);
  return Array.isArray(list) ? list.filter((c) => c && c.id && Array.isArray(c.messages)) : [];
}

export function saveConversations(list) {
  write(CONVERSATIONS, list);
}

export function loadCurrent() {
  return read(CURRENT, null);
}

export function saveCurrent(id) {
  write(CURRENT, id);
}

export function loadKey() {
  return read(KEY, null);
}

export function saveKey(key) {
  if (key) write(KEY, key);
  else localStorage.removeItem(KEY);
}
