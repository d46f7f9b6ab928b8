// The query bar: the query language's filter in one line, with completion
// of fields, tag keys and values, and the parser's errors drawn under the
// text at the position the API reports.
import {h, icon, clear} from './dom.js';
import {t} from './i18n.js';
import * as api from './api.js';
import * as tr from './timerange.js';

export const FIELDS = ['status', 'app_name', 'app_id', 'name', 'span_kind', 'node_type', 'tool_name', 'model_name',
  'model_provider', 'duration', 'error_message', 'error_class', 'user_id', 'session_id', 'run_id', 'trace_id',
  'span_id', 'parent_span_id', 'workflow_id', 'workflow_version', 'raw_status', 'start_time', 'end_time',
  'input_tokens', 'output_tokens', 'total_tokens', 'cost', 'currency', 'input', 'output', 'source'];
const KEYWORDS = ['AND', 'OR', 'NOT', 'run has (', 'exists', 'in (', 'contains'];
const FIXED = {
  status: ['error', 'ok', 'running', 'unset'],
  span_kind: ['workflow', 'llm', 'tool', 'retrieval', 'agent', 'chain', 'embedding', 'rerank', 'http', 'code', 'branch', 'other'],
  duration: ['100ms', '1s', '5s', '30s'],
};
const VALUE_FIELDS = new Set(['app_name', 'app_id', 'node_type', 'tool_name', 'model_name', 'model_provider',
  'error_class', 'user_id', 'workflow_id', 'source', 'currency', 'raw_status']);

// Tag keys seen on runs in the range (SQL over the project's spans), cached a minute.
const tagCache = new Map();
export function tagKeys(range, {signal} = {}) {
  const key = JSON.stringify(range);
  const hit = tagCache.get(key);
  if (hit && Date.now() - hit.at < 60000) return hit.promise;
  const [from, to] = tr.bounds(range);
  const bounds = `start_time >= to_timestamp_nanos(${Math.floor(from)}) AND start_time < to_timestamp_nanos(${Math.ceil(to)})`;
  const promise = api.post('/api/v1/sql', {
    sql: `SELECT DISTINCT k FROM (SELECT unnest(map_keys(tags)) AS k FROM spans WHERE span_kind = 'workflow' AND ${bounds}) ORDER BY k LIMIT 20`,
  }, {signal}).then((res) => res.rows.map((r) => r[0]).filter(Boolean));
  promise.catch(() => tagCache.delete(key));
  tagCache.set(key, {at: Date.now(), promise});
  return promise;
}

// UTF-8 byte offset within `text` → string index.
export function byteToIndex(text, byte) {
  const enc = new TextEncoder();
  let bytes = 0;
  let i = 0;
  for (const ch of text) {
    if (bytes >= byte) return i;
    bytes += enc.encode(ch).length;
    i += ch.length;
  }
  return text.length;
}

export const byteLength = (text) => new TextEncoder().encode(text).length;

// The token being typed at the caret and what it completes.
function context(text, caret) {
  const before = text.slice(0, caret);
  // The token since the last space or parenthesis: `field`, or `field=val`.
  const m = /([^\s()]*)$/.exec(before);
  const word = m[1];
  const start = caret - word.length;
  const cmp = /^([A-Za-z_][A-Za-z0-9_.\[\]"-]*?)(!=|<=|>=|==|=|<|>)(.*)$/.exec(word);
  if (cmp) return {kind: 'value', field: cmp[1], prefix: cmp[3].replace(/^["']/, ''), start: start + cmp[1].length + cmp[2].length};
  return {kind: 'field', prefix: word, start};
}

export function queryBar({value = '', placeholder, onSubmit, range}) {
  const input = h('input', {class: 'qb-input', value, placeholder: placeholder || t('query.placeholder'),
    spellcheck: 'false', autocomplete: 'off', 'aria-label': t('query.label'), dataset: {testid: 'query-input'}});
  const mirror = h('div', {class: 'qb-mirror', 'aria-hidden': 'true'});
  const list = h('ul', {class: 'qb-complete', role: 'listbox', hidden: true});
  const errorBox = h('div', {class: 'qb-error', role: 'alert', hidden: true});
  const run = h('button', {class: 'btn primary', dataset: {testid: 'query-run'}, onclick: () => submit()}, icon('search', 14), t('query.run'));
  const el = h('div', {class: 'qb-wrap'},
    h('div', {class: 'qb'}, h('div', {class: 'qb-field'}, mirror, input, list), run), errorBox);
  let items = [];
  let active = -1;
  let errSpan = null;
  let seq = 0;
  const valueCache = new Map();

  function paintMirror() {
    clear(mirror);
    const text = input.value;
    if (errSpan) {
      const [a, b] = errSpan;
      mirror.append(text.slice(0, a), h('mark', {}, text.slice(a, b) || ' '), text.slice(b));
    } else {
      mirror.append(text);
    }
    mirror.scrollLeft = input.scrollLeft;
  }

  function submit() {
    close();
    onSubmit(input.value.trim());
  }

  function close() {
    list.hidden = true;
    items = [];
    active = -1;
  }

  function accept(i) {
    const it = items[i];
    if (!it) return;
    const text = input.value;
    const caret = input.selectionStart;
    const next = text.slice(0, it.start) + it.insert + text.slice(caret);
    input.value = next;
    const pos = it.start + it.insert.length;
    input.setSelectionRange(pos, pos);
    close();
    input.focus();
    if (it.then) complete();
  }

  function show(list2) {
    items = list2.slice(0, 12);
    clear(list);
    active = items.length ? 0 : -1;
    items.forEach((it, i) => list.appendChild(h('li', {
      class: ['qb-item', i === active && 'active'], role: 'option',
      onmousedown: (e) => { e.preventDefault(); accept(i); },
    }, h('span', {class: 'qb-item-text'}, it.label), it.hint ? h('span', {class: 'qb-item-hint'}, it.hint) : null)));
    list.hidden = !items.length;
  }

  async function values(field) {
    if (FIXED[field]) return FIXED[field];
    if (!VALUE_FIELDS.has(field) && !field.startsWith('tags.')) return [];
    if (!valueCache.has(field)) {
      const r = range ? range() : null;
      const clause = r ? tr.clause(r) : 'last 24h';
      valueCache.set(field, api.query(`${field} exists ${clause} | by ${field} | count() as n | sort n desc | limit 20`)
        .then((res) => res.rows.map((row) => row[field]).filter((v) => v != null).map(String))
        .catch(() => []));
    }
    return valueCache.get(field);
  }

  async function complete() {
    const my = ++seq;
    const c = context(input.value, input.selectionStart);
    if (c.kind === 'value') {
      const vals = await values(c.field);
      if (my !== seq) return;
      const p = c.prefix.toLowerCase();
      show(vals.filter((v) => v.toLowerCase().startsWith(p) && v !== c.prefix)
        .map((v) => ({label: v, insert: `${api.quote(v)} `, start: c.start, hint: c.field})));
      return;
    }
    if (!c.prefix) { close(); return; }
    const p = c.prefix.toLowerCase();
    let tagItems = [];
    if (p.startsWith('t')) {
      try {
        const keys = await tagKeys(range ? range() : {kind: 'last', last: '24h'});
        if (my !== seq) return;
        tagItems = keys.map((k) => `tags.${k}`);
      } catch { /* no tags */ }
    }
    const fields = [...FIELDS, ...tagItems].filter((f) => f.startsWith(p) && f !== c.prefix)
      .map((f) => ({label: f, insert: FIXED[f] || VALUE_FIELDS.has(f) || f.startsWith('tags.') ? `${f}=` : f,
        start: c.start, hint: f.startsWith('tags.') ? t('query.tag') : t('query.field'), then: true}));
    const kws = KEYWORDS.filter((k) => k.toLowerCase().startsWith(p) && k.toLowerCase() !== p)
      .map((k) => ({label: k, insert: k.endsWith('(') ? k : `${k} `, start: c.start, hint: t('query.keyword')}));
    show([...fields, ...kws]);
  }

  input.addEventListener('input', () => { setError(null); paintMirror(); complete(); });
  input.addEventListener('scroll', paintMirror);
  input.addEventListener('blur', () => setTimeout(close, 100));
  input.addEventListener('keydown', (e) => {
    if (!list.hidden && items.length) {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        active = (active + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
        [...list.children].forEach((li, i) => li.classList.toggle('active', i === active));
        return;
      }
      if (e.key === 'Tab') { e.preventDefault(); accept(active); return; }
      if (e.key === 'Escape') { close(); return; }
    }
    if (e.key === 'Enter') { e.preventDefault(); submit(); }
  });

  // err: an ApiError of the query, `offset` the byte offset of the bar's
  // text within the query sent (null clears).
  function setError(err, offset = 0) {
    if (!err) {
      errSpan = null;
      errorBox.hidden = true;
      el.classList.remove('has-error');
      paintMirror();
      return;
    }
    const b = err.body || {};
    const text = input.value;
    let where = null;
    if (Array.isArray(b.span)) {
      const [s0, s1] = b.span.map((x) => x - offset);
      const len = byteLength(text);
      if (s1 >= 0 && s0 <= len && !(b.span[0] === 0 && b.span[1] === 0 && offset > 0)) {
        const a = byteToIndex(text, Math.max(0, s0));
        const z = byteToIndex(text, Math.min(len, Math.max(s0, s1)));
        errSpan = [a, Math.max(z, a + 1)];
        where = a;
      }
    }
    el.classList.add('has-error');
    const fix = b.suggestion && /`([^`]+)`/.exec(b.suggestion);
    clear(errorBox).append(
      h('div', {class: 'qb-error-msg'}, icon('alert', 14), h('span', {}, err.message)),
      where != null ? h('pre', {class: 'qb-caret', dataset: {testid: 'query-caret'}},
        `${text}\n${' '.repeat(where)}${'^'.repeat(Math.max(1, errSpan[1] - errSpan[0]))}`) : null,
      b.suggestion ? h('div', {class: 'qb-suggest'}, `${t('query.hint')}: ${b.suggestion}`,
        fix && errSpan && /did you mean/i.test(b.suggestion) ? h('button', {class: 'link', onclick: () => {
          input.value = text.slice(0, errSpan[0]) + fix[1] + text.slice(errSpan[1]);
          submit();
        }}, t('query.apply', {fix: fix[1]})) : null) : null);
    errorBox.hidden = false;
    errorBox.dataset.span = errSpan ? errSpan.join(',') : '';
    paintMirror();
  }

  paintMirror();
  return {el, input, setError, get value() { return input.value.trim(); }, set value(v) { input.value = v; paintMirror(); }};
}
