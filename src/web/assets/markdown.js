// Model output as Markdown, rendered so that it can never inject HTML or script.
//
// markdown-it with `html: false` escapes raw HTML (it shows as text); links are
// limited to http(s) and mailto (anything else, e.g. `javascript:`, stays text);
// images are off, so an answer cannot make the browser fetch anything.

import MarkdownIt from '/vendor/markdown-it.mjs';

const SAFE_LINK = /^(https?:|mailto:)/i;

const md = new MarkdownIt({ html: false, linkify: false, breaks: true });
md.disable('image');
md.validateLink = (url) => SAFE_LINK.test(url.trim());

const defaultLinkOpen = md.renderer.rules.link_open
  || ((tokens, idx, options, env, self) => self.renderToken(tokens, idx, options));
md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
  tokens[idx].attrSet('target', '_blank');
  tokens[idx].attrSet('rel', 'noopener noreferrer');
  return defaultLinkOpen(tokens, idx, options, env, self);
};

/** `text` as safe HTML. */
export function render(text) {
  return md.render(text);
}
