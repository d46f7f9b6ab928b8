// Log search (/logs): the newest log lines matching a text, a minimum
// severity, a service and a stream (GET /api/v1/logs), each linked to its
// run when it carries a trace or run id; or, when the query field is
// filled, the answer of a `logs | …` query (POST /api/v1/query): its lines,
// or its groups as a table. logTable() is also the run view's "logs of
// this run" panel.
import {h, icon, replace} from '../dom.js';
import {t} from '../i18n.js';
import * as api from '../api.js';
import * as fmt from '../format.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];
const LIMIT = 200;

// Severity badge colours: the run statuses' palette.
const LEVEL_CLASS = {error: 'st-error', fatal: 'st-error', warn: 'st-running', info: 'st-ok'};

function when(r) {
  const ms = Date.parse(r.time);
  return Number.isFinite(ms) ? fmt.time(ms * 1e6, {ms: true}) : r.time;
}

// One row per record, newest first; `withRun`: a column linking the run.
export function logTable(records, {withRun = true} = {}) {
  return h('table', {class: 'table logs-table', dataset: {testid: 'logs-table'}},
    h('thead', {}, h('tr', {},
      h('th', {}, t('logs.col.time')), h('th', {}, t('logs.col.severity')), h('th', {}, t('logs.col.service')),
      h('th', {}, t('logs.col.message')), withRun ? h('th', {}, t('logs.col.run')) : null)),
    h('tbody', {}, records.map((r) => {
      const level = r.severity || 'unset';
      const run = r.run_id || r.trace_id;
      return h('tr', {dataset: {severity: level}},
        h('td', {class: 'nowrap mono small'}, when(r)),
        h('td', {}, h('span', {class: ['badge', LEVEL_CLASS[level] || 'st-unset'], title: r.severity_text || ''}, r.severity_text || level)),
        h('td', {class: 'nowrap'}, r.service || h('span', {class: 'muted'}, r.stream || '')),
        h('td', {class: 'log-body'}, h('pre', {class: 'log-text'}, r.body)),
        withRun ? h('td', {class: 'nowrap'}, run ? h('a', {href: `/runs/${encodeURIComponent(run)}`, class: 'mono small'}, fmt.short(run, 10)) : null) : null);
    })));
}

// A severity number of the query answer as its level name (9 → info).
function level(n) {
  return Number.isInteger(n) && n >= 1 && n <= 24 ? LEVELS[Math.floor((n - 1) / 4)] : undefined;
}

// The query's answer: log lines as the search shows them, or the groups
// of an aggregating query as a plain table.
function answerView(answer) {
  const names = answer.columns.map((c) => c.name);
  if (names.includes('body')) {
    const records = answer.rows.map((r) => ({...r, time: fmt.rfc3339(r.time), severity: level(r.severity)}));
    return records.length ? logTable(records) : h('p', {class: 'muted', dataset: {testid: 'logs-empty'}}, t('logs.none'));
  }
  const cell = (v, c) => (c.type === 'timestamp' ? fmt.time(v) : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v ?? ''));
  return h('table', {class: 'table', dataset: {testid: 'logs-groups'}},
    h('thead', {}, h('tr', {}, answer.columns.map((c) => h('th', {}, c.name)))),
    h('tbody', {}, answer.rows.map((r) => h('tr', {}, answer.columns.map((c) => h('td', {class: 'nowrap'}, cell(r[c.name], c)))))));
}

export function mount(ctx) {
  ctx.setTitle(t('logs.title'));
  const search = ctx.search;
  const lq = h('input', {class: 'input wide-input mono', placeholder: t('logs.queryPlaceholder'), 'aria-label': t('logs.query'),
    value: search.get('lq') || '', dataset: {field: 'lq'}});
  const q = h('input', {class: 'input wide-input', placeholder: t('logs.placeholder'), 'aria-label': t('logs.text'),
    value: search.get('q') || '', dataset: {field: 'q'}});
  const severity = h('select', {class: 'input', 'aria-label': t('logs.severity'), dataset: {field: 'severity'}},
    h('option', {value: ''}, t('logs.anySeverity')),
    LEVELS.map((l) => h('option', {value: l, selected: search.get('severity') === l}, t('logs.atLeast', {level: l}))));
  const service = h('input', {class: 'input', placeholder: t('logs.service'), 'aria-label': t('logs.service'),
    value: search.get('service') || '', dataset: {field: 'service'}});
  const stream = h('input', {class: 'input', placeholder: t('logs.stream'), 'aria-label': t('logs.stream'),
    value: search.get('stream') || '', dataset: {field: 'stream'}});
  const results = h('div', {class: 'table-box', dataset: {testid: 'logs-results'}});
  const controller = new AbortController();

  function params() {
    const p = new URLSearchParams();
    if (lq.value.trim()) p.set('lq', lq.value.trim());
    if (q.value.trim()) p.set('q', q.value.trim());
    if (severity.value) p.set('severity', severity.value);
    if (service.value.trim()) p.set('service', service.value.trim());
    if (stream.value.trim()) p.set('stream', stream.value.trim());
    return p;
  }

  async function load() {
    const p = params();
    history.replaceState({}, '', `${location.pathname}${p.toString() ? `?${p}` : ''}`);
    p.set('limit', String(LIMIT));
    replace(results, h('div', {class: 'skeleton tall'}));
    const text = lq.value.trim();
    if (text) {
      // The query language: `logs | ` is added when the text lacks it.
      const full = /^logs\b/i.test(text) ? text : `logs | ${text}`;
      try {
        replace(results, answerView(await api.query(full, {signal: controller.signal})));
      } catch (e) {
        if (e.name === 'AbortError') return;
        replace(results, h('div', {class: 'error-box', dataset: {testid: 'logs-error'}}, e.message));
      }
      return;
    }
    try {
      const page = await api.get(`/api/v1/logs?${p}`, {signal: controller.signal});
      const records = page.records || [];
      replace(results, records.length
        ? [logTable(records), page.truncated ? h('p', {class: 'muted small'}, t('logs.more', {n: fmt.num(records.length)})) : null]
        : h('div', {class: 'empty-state', dataset: {testid: 'logs-empty'}}, h('p', {class: 'muted'}, t('logs.none'))));
    } catch (e) {
      if (e.name === 'AbortError') return;
      replace(results, h('div', {class: 'error-box'}, e.message));
    }
  }

  const form = h('form', {class: 'form-row logs-form', onsubmit: (e) => { e.preventDefault(); load(); }},
    q, severity, service, stream,
    h('button', {class: 'btn primary', type: 'submit', dataset: {testid: 'logs-search'}}, icon('search', 14), t('logs.search')));
  const queryForm = h('form', {class: 'form-row logs-form', onsubmit: (e) => { e.preventDefault(); load(); }},
    lq, h('button', {class: 'btn', type: 'submit', dataset: {testid: 'logs-query'}}, icon('search', 14), t('logs.run')));
  replace(ctx.el, h('section', {class: 'panel'}, form, queryForm), h('section', {class: 'panel'}, results));
  load();
  return () => controller.abort();
}
