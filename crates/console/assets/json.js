// A collapsible JSON view. Children render only when opened, long strings
// show their start with a "show all", so large payloads stay cheap.
import {h, icon} from './dom.js';
import {t} from './i18n.js';

const LONG = 600;

// Parses text that holds JSON (objects/arrays only); null when it doesn't.
export function tryParse(text) {
  if (typeof text !== 'string') return null;
  const trimmed = text.trim();
  if (!(trimmed.startsWith('{') || trimmed.startsWith('['))) return null;
  try {
    return {value: JSON.parse(trimmed)};
  } catch {
    return null;
  }
}

function scalar(v) {
  if (v === null) return h('span', {class: 'j-null'}, 'null');
  if (typeof v === 'number') return h('span', {class: 'j-num'}, String(v));
  if (typeof v === 'boolean') return h('span', {class: 'j-bool'}, String(v));
  const text = String(v);
  // A string that itself holds JSON (common in LLM payloads) opens as JSON.
  const inner = text.length > 1 ? tryParse(text) : null;
  if (inner && typeof inner.value === 'object' && inner.value !== null) {
    return h('span', {class: 'j-embedded'}, node(inner.value, 1, false));
  }
  if (text.length <= LONG) return h('span', {class: 'j-str'}, JSON.stringify(text));
  const span = h('span', {class: 'j-str'}, `${JSON.stringify(text.slice(0, LONG)).slice(0, -1)}…"`);
  const more = h('button', {class: 'link j-more', onclick: () => {
    span.textContent = JSON.stringify(text);
    more.remove();
  }}, t('json.showAll', {n: text.length.toLocaleString()}));
  return h('span', {}, span, ' ', more);
}

function node(v, depth, open = depth < 2) {
  if (v === null || typeof v !== 'object') return scalar(v);
  const isArr = Array.isArray(v);
  const entries = isArr ? v.map((x, i) => [i, x]) : Object.entries(v);
  const [o, c] = isArr ? ['[', ']'] : ['{', '}'];
  if (!entries.length) return h('span', {class: 'j-punct'}, o + c);
  const summary = h('span', {class: 'j-summary'}, isArr ? t('json.items', {n: entries.length}) : t('json.keys', {n: entries.length}));
  const body = h('div', {class: 'j-body'});
  let rendered = false;
  const toggle = h('button', {class: 'j-toggle', 'aria-expanded': String(open), onclick: () => set(!isOpen)}, icon('chevron', 12));
  const el = h('span', {class: 'j-node'}, toggle, h('span', {class: 'j-punct'}, o), summary, body, h('span', {class: 'j-punct j-close'}, c));
  let isOpen = false;
  function set(next) {
    isOpen = next;
    el.classList.toggle('open', next);
    toggle.setAttribute('aria-expanded', String(next));
    if (next && !rendered) {
      rendered = true;
      for (const [k, x] of entries) {
        body.appendChild(h('div', {class: 'j-row'},
          isArr ? null : h('span', {class: 'j-key'}, JSON.stringify(String(k))), isArr ? null : h('span', {class: 'j-punct'}, ': '),
          node(x, depth + 1)));
      }
    }
  }
  set(open);
  return el;
}

// The view of a payload: JSON when it parses, else preformatted text.
export function payload(text) {
  if (text == null || text === '') return h('div', {class: 'muted'}, t('json.none'));
  const parsed = tryParse(text);
  if (parsed) return h('div', {class: 'json'}, node(parsed.value, 0, true));
  if (text.length <= LONG * 4) return h('pre', {class: 'text-payload'}, text);
  const pre = h('pre', {class: 'text-payload'}, `${text.slice(0, LONG * 4)}…`);
  const more = h('button', {class: 'link', onclick: () => { pre.textContent = text; more.remove(); }},
    t('json.showAll', {n: text.length.toLocaleString()}));
  return h('div', {}, pre, more);
}

export function jsonOf(value) {
  return h('div', {class: 'json'}, node(value, 0, true));
}
