// Model output is untrusted. It becomes DOM only through this file:
// markdown-it with raw HTML off (any HTML in the text is escaped and shown as
// text), then DOMPurify over markdown-it's own HTML as a second line, handed
// over as a DocumentFragment (no innerHTML of model text anywhere).
import MarkdownIt from 'markdown-it';
import DOMPurify from 'dompurify';

// breaks: a model's single newlines are line breaks, as chat pages show them
const md = new MarkdownIt({ html: false, linkify: true, typographer: false, breaks: true });
// An image would make the page fetch whatever URL the model wrote (a
// tracking pixel, a leak of the conversation): images stay text.
md.disable('image');

// Math stays text: $...$, $$...$$, \(...\) and \[...\] are kept verbatim so
// that emphasis and escapes do not eat the _ * \ inside them.
const MATH_DELIMS = [
  ['$$', '$$'],
  ['\\[', '\\]'],
  ['\\(', '\\)'],
  ['$', '$'],
];

function mathText(state, silent) {
  const src = state.src;
  const pos = state.pos;
  for (const [open, close] of MATH_DELIMS) {
    if (!src.startsWith(open, pos)) continue;
    const from = pos + open.length;
    const end = src.indexOf(close, from);
    if (end <= from) continue;
    const inner = src.slice(from, end);
    // a lone $ needs TeX-like content: "$5 and $10" is money, not math
    if (open === '$') {
      if (/^\s|\s$/.test(inner) || inner.includes('\n\n') || /\d/.test(src[end + 1] || '')) continue;
    }
    if (!silent) {
      const t = state.push('math_text', 'span', 0);
      t.content = src.slice(pos, end + close.length);
    }
    state.pos = end + close.length;
    return true;
  }
  return false;
}
md.inline.ruler.before('escape', 'math_text', mathText);
md.renderer.rules.math_text = (tokens, i) =>
  `<span class="math">${md.utils.escapeHtml(tokens[i].content)}</span>`;

// Links open in a new tab and tell the target nothing about this page.
DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A') {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer nofollow');
  }
});

const PURIFY = {
  RETURN_DOM_FRAGMENT: true,
  ALLOWED_TAGS: ['a', 'p', 'br', 'hr', 'strong', 'em', 's', 'code', 'pre', 'blockquote', 'ul',
    'ol', 'li', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'table', 'thead', 'tbody', 'tr', 'th', 'td',
    'span'],
  ALLOWED_ATTR: ['href', 'class', 'start', 'style', 'title'],
};

// Markdown text -> a sanitized DocumentFragment.
export function renderMarkdown(text) {
  const frag = DOMPurify.sanitize(md.render(text), PURIFY);
  for (const pre of frag.querySelectorAll('pre')) decorateCode(pre);
  return frag;
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // plain http on a LAN address is not a secure context: no clipboard API
    const ta = document.createElement('textarea');
    ta.value = text;
    document.body.appendChild(ta);
    ta.select();
    const ok = document.execCommand('copy');
    ta.remove();
    return ok;
  }
}

// A header over each code block: its language and a copy button.
function decorateCode(pre) {
  const code = pre.querySelector('code');
  const lang = /language-([\w+#.-]+)/.exec(code?.className || '')?.[1] || '';
  const bar = document.createElement('div');
  bar.className = 'code-bar';
  const label = document.createElement('span');
  label.textContent = lang;
  const btn = document.createElement('button');
  btn.type = 'button';
  btn.className = 'copy';
  btn.textContent = 'Copy';
  btn.addEventListener('click', async () => {
    const ok = await copyText(code ? code.textContent : pre.textContent);
    btn.textContent = ok ? 'Copied' : 'Copy failed';
    setTimeout(() => (btn.textContent = 'Copy'), 1500);
  });
  bar.append(label, btn);
  const box = document.createElement('div');
  box.className = 'code-block';
  pre.replaceWith(box);
  box.append(bar, pre);
}
