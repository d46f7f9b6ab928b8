// Runs explorer: a query bar in the query language, facets with counts, a
// table of runs (or spans) with keyset paging, and export of the result.
//
// The bar holds a filter. The console sends
//   <time> [span_kind=workflow] (<filter>) [<keyset>] | sort start_time desc, span_id desc | limit N
// ("Runs" applies the filter to each run's root span; "Spans" to every
// span). A filter followed by `| stages` runs as written and shows a table.
import {h, icon, replace, clear} from '../dom.js';
import {t} from '../i18n.js';
import * as api from '../api.js';
import * as fmt from '../format.js';
import * as tr from '../timerange.js';
import {queryBar, byteLength} from '../querybar.js';
import {appNames} from './overview.js';

const PAGE = 50;

// Splits `filter | stages` at the first | outside quotes.
function splitPipe(text) {
  let q = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q) {
      if (c === '\\') i++;
      else if (c === q) q = null;
    } else if (c === '"' || c === "'") q = c;
    else if (c === '|') return [text.slice(0, i).trim(), text.slice(i + 1).trim()];
  }
  return [text.trim(), null];
}

// A time range written in the bar moves to the picker.
function takeTime(text) {
  const lead = /^\s*last\s+(\d+)([mhd])\b\s*/i.exec(text) || /\s*\blast\s+(\d+)([mhd])\s*$/i.exec(text);
  if (lead) return {range: {kind: 'last', last: `${lead[1]}${lead[2].toLowerCase()}`}, rest: text.replace(lead[0], ' ').trim()};
  const abs = /^\s*from\s+(\S+)\s+to\s+(\S+)\s*/i.exec(text) || /\s*\bfrom\s+(\S+)\s+to\s+(\S+)\s*$/i.exec(text);
  if (abs) {
    const f = Date.parse(abs[1].replace(/^["']|["']$/g, ''));
    const tt = Date.parse(abs[2].replace(/^["']|["']$/g, ''));
    if (!Number.isNaN(f) && !Number.isNaN(tt) && tt > f) return {range: {kind: 'abs', from: f, to: tt}, rest: text.replace(abs[0], ' ').trim()};
  }
  return null;
}

const hasRunHas = (text) => /\brun\s+has\b/i.test(text);

function statusBadge(status) {
  return h('span', {class: ['badge', `st-${status || 'unset'}`]}, t(`status.${status || 'unset'}`));
}

export function mount(ctx) {
  ctx.setTitle(t('runs.title'));
  let range = tr.fromParams(ctx.search);
  let mode = ctx.search.get('mode') === 'spans' ? 'spans' : 'runs';
  let filter = ctx.search.get('q') || '';
  let cursors = [null];
  let pageIndex = 0;
  let controller = null;
  let lastSent = null;

  const bar = queryBar({value: filter, onSubmit: (v) => { filter = v; restart(); }, range: () => range});
  const modeSwitch = h('div', {class: 'segmented', role: 'tablist'}, ['runs', 'spans'].map((m) => h('button', {
    class: ['seg', mode === m && 'active'], dataset: {mode: m}, role: 'tab',
    onclick: () => { mode = m; [...modeSwitch.children].forEach((b) => b.classList.toggle('active', b.dataset.mode === m)); restart(); },
  }, t(`runs.mode.${m}`))));
  const exportMenu = h('div', {class: 'menu export-menu', hidden: true}, ['csv', 'jsonl', 'parquet'].map((f) => h('button', {
    class: 'menu-item', dataset: {format: f}, onclick: () => { exportMenu.hidden = true; doExport(f); },
  }, t(`runs.export.${f}`))));
  const exportBtn = h('div', {class: 'dropdown'}, h('button', {class: 'btn', dataset: {testid: 'export'},
    onclick: (e) => { e.stopPropagation(); exportMenu.hidden = !exportMenu.hidden; }}, icon('download', 14), t('runs.export.title')), exportMenu);
  const onDoc = () => { exportMenu.hidden = true; };
  document.addEventListener('click', onDoc);

  const facets = h('aside', {class: 'facets', dataset: {testid: 'facets'}});
  const summary = h('div', {class: 'result-summary'});
  const sent = h('code', {class: 'query-sent', dataset: {testid: 'query-sent'}});
  const tableBox = h('div', {class: 'table-box'});
  const pager = h('div', {class: 'pager'});
  const toast = h('div', {class: 'toast', hidden: true});

  const actions = () => replace(ctx.actions,
    tr.picker(range, (r) => { range = r; actions(); restart(); }),
    h('button', {class: 'btn icon-only', title: t('refresh.now'), onclick: () => restart()}, icon('refresh')),
    // What changed for these spans: the filter as the analysis target.
    h('button', {class: 'btn', dataset: {testid: 'explain'}, onclick: () => {
      const p = tr.toParams(range, new URLSearchParams({target: splitPipe(filter)[0] || 'status=error'}));
      ctx.go(`/rca?${p}`);
    }}, icon('search', 14), ' ', t('nav.rca')));
  actions();
  replace(ctx.el,
    h('div', {class: 'explorer-bar'}, bar.el, h('div', {class: 'explorer-tools'}, modeSwitch, exportBtn)),
    h('div', {class: 'explorer'}, facets,
      h('div', {class: 'results'},
        h('div', {class: 'results-head'}, summary, h('details', {class: 'sent'}, h('summary', {}, t('runs.querySent')), sent)),
        tableBox, pager)),
    toast);

  function setUrl() {
    const p = new URLSearchParams();
    if (filter) p.set('q', filter);
    if (mode !== 'runs') p.set('mode', mode);
    tr.toParams(range, p);
    history.replaceState({}, '', `/runs?${p}`);
  }

  // The filter stage the bar's text becomes, and where the text starts in it.
  function base(f = filter) {
    const T = tr.clause(range);
    const root = mode === 'runs' ? 'span_kind=workflow ' : '';
    if (!f) return {text: `${T} ${root}`.trim(), offset: 0};
    const prefix = `${T} ${root}(`;
    return {text: `${prefix}${f})`, offset: byteLength(prefix)};
  }

  function restart() {
    const moved = takeTime(filter);
    if (moved) {
      range = moved.range;
      filter = moved.rest;
      bar.value = filter;
      actions();
    }
    cursors = [null];
    pageIndex = 0;
    setUrl();
    load();
  }

  function keyset(c) {
    if (!c) return '';
    return ` (start_time<${c.start} OR (start_time=${c.start} span_id<${api.quote(c.span)}))`;
  }

  async function load() {
    if (controller) controller.abort();
    controller = new AbortController();
    const {signal} = controller;
    const now = new Date().toISOString();
    bar.setError(null);
    tableBox.classList.add('loading');
    const [f, stages] = splitPipe(filter);
    if (stages != null) return loadPipeline(f, stages, now, signal);
    const b = base(f);
    const listing = `${b.text}${keyset(cursors[pageIndex])} | sort start_time desc, span_id desc | limit ${PAGE + 1}`;
    sent.textContent = listing;
    lastSent = listing;
    let res;
    try {
      res = await api.query(listing, {now, signal});
    } catch (e) {
      if (e.name === 'AbortError') return;
      tableBox.classList.remove('loading');
      if (e.body && e.body.span) {
        bar.setError(e, b.offset);
        replace(tableBox, h('div', {class: 'empty-state'}, t('runs.fixQuery')));
      } else {
        replace(tableBox, h('div', {class: 'panel-error'}, icon('alert', 14), ' ', e.message));
      }
      clear(summary); clear(pager); clear(facets);
      return;
    }
    const more = res.rows.length > PAGE;
    const rows = res.rows.slice(0, PAGE);
    const exact = res.exact.slice(0, PAGE);
    if (more) {
      const last = PAGE - 1;
      cursors[pageIndex + 1] = {start: fmt.rfc3339(exact[last].start_time || String(rows[last].start_time)), span: rows[last].span_id};
    }
    if (mode === 'runs') await addRunTotals(rows, now, signal).catch(() => {});
    if (signal.aborted) return;
    tableBox.classList.remove('loading');
    replace(tableBox, mode === 'runs' ? runsTable(rows) : spansTable(rows));
    tableBox.dataset.rows = String(rows.length);
    renderPager(more);
    loadCount(b.text, now, signal);
    loadFacets(f, now, signal);
  }

  async function addRunTotals(rows, now, signal) {
    const ids = rows.map((r) => r.run_id).filter(Boolean);
    if (!ids.length) return;
    const starts = rows.map((r) => Number(r.start_time)).filter((x) => x);
    const from = new Date(Math.min(...starts) / 1e6 - 1000).toISOString();
    const to = new Date(Math.max(...starts) / 1e6 + 6 * 3600e3).toISOString();
    const res = await api.query(`from ${from} to ${to} span_kind=llm run_id in (${ids.map(api.quote).join(', ')}) | by run_id | sum(total_tokens) as tokens, sum(cost) as spend | limit ${ids.length}`, {now, signal});
    const by = new Map(res.rows.map((r) => [r.run_id, r]));
    for (const r of rows) {
      const x = by.get(r.run_id);
      if (x) { r.total_tokens = r.total_tokens ?? x.tokens; r.cost = r.cost ?? x.spend; }
    }
  }

  async function loadCount(text, now, signal) {
    try {
      const res = await api.query(`${text} | count() as n, error_rate() as err`, {now, signal});
      const r = res.rows[0] || {n: 0, err: 0};
      replace(summary,
        h('strong', {dataset: {testid: 'result-count'}}, fmt.num(r.n)), ' ',
        t(mode === 'runs' ? 'runs.countRuns' : 'runs.countSpans'),
        r.n ? h('span', {class: ['pill', r.err > 0 ? 'bad' : 'good']}, t('runs.failedPct', {v: fmt.pct(r.err)})) : null,
        h('span', {class: 'muted small'}, ` · ${tr.label(range)}`));
    } catch { /* the table shows the error */ }
  }

  function renderPager(more) {
    replace(pager,
      h('span', {class: 'muted'}, t('runs.page', {n: pageIndex + 1})),
      h('button', {class: 'btn', disabled: pageIndex === 0, dataset: {testid: 'page-newer'}, onclick: () => { pageIndex--; load(); }}, icon('left', 14), t('runs.newer')),
      h('button', {class: 'btn', disabled: !more, dataset: {testid: 'page-older'}, onclick: () => { pageIndex++; load(); }}, t('runs.older'), icon('chevron', 14)));
  }

  const runLink = (r) => `/runs/${encodeURIComponent(r.run_id || r.trace_id || '')}`;

  function runsTable(rows) {
    if (!rows.length) {
      // Node fields are never on a run's root span: offer the runs containing such a node.
      const [f] = splitPipe(filter);
      const nodeish = f && !hasRunHas(f) && /\b(tool_name|model_name|model_provider|node_type|span_kind|input_tokens|output_tokens|total_tokens|cost)\b/.test(f);
      return h('div', {class: 'empty-state'}, h('p', {}, t('runs.none')),
        nodeish ? h('p', {class: 'small'}, t('runs.rootHint'), ' ', h('button', {class: 'link', dataset: {testid: 'run-has-hint'},
          onclick: () => { filter = `run has (${f})`; bar.value = filter; restart(); }}, `run has (${f})`))
          : h('p', {class: 'muted small'}, t('runs.noneHint')));
    }
    return h('table', {class: 'table runs-table', dataset: {testid: 'runs-table'}},
      h('thead', {}, h('tr', {}, ['status', 'app', 'start', 'duration', 'tokens', 'cost', 'user', 'session', 'error'].map((c) =>
        h('th', {class: `col-${c}`}, t(`runs.col.${c}`))))),
      h('tbody', {}, rows.map((r) => h('tr', {class: ['row', r.status === 'error' && 'is-error'], dataset: {run: r.run_id || r.trace_id || '', span: r.span_id},
        onclick: (e) => { if (!e.target.closest('a')) ctx.go(runLink(r)); }},
      h('td', {}, statusBadge(r.status)),
      h('td', {class: 'cell-app', title: r.app_id || ''}, r.app_name || fmt.short(r.app_id, 10)),
      h('td', {class: 'cell-time'}, h('a', {href: runLink(r)}, fmt.time(r.start_time)), h('div', {class: 'muted small'}, fmt.ago(r.start_time))),
      h('td', {class: 'num'}, fmt.duration(r.duration)),
      h('td', {class: 'num'}, r.total_tokens == null ? '—' : fmt.num(r.total_tokens)),
      h('td', {class: 'num'}, r.cost == null ? '—' : fmt.cost(r.cost, r.currency)),
      h('td', {class: 'cell-id', title: r.user_id || ''}, r.user_id ? h('a', {href: `/users/${encodeURIComponent(r.user_id)}`}, fmt.short(r.user_id, 14)) : '—'),
      h('td', {class: 'cell-id', title: r.session_id || ''}, r.session_id ? h('a', {href: `/sessions/${encodeURIComponent(r.session_id)}`}, fmt.short(r.session_id, 8)) : '—'),
      h('td', {class: 'cell-error', title: r.error_message || ''}, r.error_message || '')))));
  }

  function spansTable(rows) {
    if (!rows.length) return h('div', {class: 'empty-state'}, h('p', {}, t('runs.none')));
    return h('table', {class: 'table spans-table', dataset: {testid: 'runs-table'}},
      h('thead', {}, h('tr', {}, ['status', 'name', 'kind', 'app', 'start', 'duration', 'tokens', 'cost', 'error'].map((c) =>
        h('th', {class: `col-${c}`}, t(`runs.col.${c}`))))),
      h('tbody', {}, rows.map((r) => {
        const href = `${runLink(r)}?span=${encodeURIComponent(r.span_id)}`;
        return h('tr', {class: ['row', r.status === 'error' && 'is-error'], dataset: {run: r.run_id || r.trace_id || '', span: r.span_id},
          onclick: (e) => { if (!e.target.closest('a')) ctx.go(href); }},
        h('td', {}, statusBadge(r.status)),
        h('td', {class: 'cell-name'}, h('a', {href}, r.name || r.span_id)),
        h('td', {}, h('span', {class: `kind k-${r.span_kind || 'other'}`}, r.node_type || r.span_kind || '—')),
        h('td', {class: 'cell-app'}, r.app_name || fmt.short(r.app_id, 10)),
        h('td', {class: 'cell-time'}, fmt.time(r.start_time)),
        h('td', {class: 'num'}, fmt.duration(r.duration)),
        h('td', {class: 'num'}, r.total_tokens == null ? '—' : fmt.num(r.total_tokens)),
        h('td', {class: 'num'}, r.cost == null ? '—' : fmt.cost(r.cost, r.currency)),
        h('td', {class: 'cell-error', title: r.error_message || ''}, r.error_message || ''));
      })));
  }

  async function loadPipeline(f, stages, now, signal) {
    const b = base(f);
    const text = `${b.text} | ${stages}`;
    sent.textContent = text;
    lastSent = text;
    clear(facets); clear(pager);
    try {
      const res = await api.query(text, {now, signal});
      tableBox.classList.remove('loading');
      replace(summary, h('strong', {dataset: {testid: 'result-count'}}, fmt.num(res.rows.length)), ' ', t('runs.countRows'));
      const cell = (c, v) => {
        if (v == null) return '—';
        if (c.type === 'timestamp') return fmt.time(v);
        if (c.type === 'duration') return fmt.duration(v);
        if (c.type === 'float') return /rate/.test(c.name) ? fmt.pct(v) : fmt.num(v);
        if (c.type === 'int') return fmt.num(v);
        if (c.type === 'map') return JSON.stringify(v);
        return String(v);
      };
      tableBox.dataset.rows = String(res.rows.length);
      replace(tableBox, h('table', {class: 'table', dataset: {testid: 'runs-table'}},
        h('thead', {}, h('tr', {}, res.columns.map((c) => h('th', {class: ['int', 'float', 'duration'].includes(c.type) ? 'num' : ''}, c.name)))),
        h('tbody', {}, res.rows.map((r) => h('tr', {}, res.columns.map((c) =>
          h('td', {class: ['int', 'float', 'duration'].includes(c.type) ? 'num' : ''}, cell(c, r[c.name]))))))));
    } catch (e) {
      if (e.name === 'AbortError') return;
      tableBox.classList.remove('loading');
      if (e.body && e.body.span) bar.setError(e, b.offset);
      replace(tableBox, h('div', {class: 'panel-error'}, icon('alert', 14), ' ', e.message));
    }
  }

  // Facets: counts per value of the result. Every facet of an unfiltered
  // page is a rollup answer (status, app, the [metrics] label tags, and in
  // Runs mode the node types, tools and models counted as calls), so the
  // page costs the same at 10M spans as at 10k. What only a scan can count
  // (a tag that is not a rollup dimension; runs containing a node under a
  // filter) is counted when asked, with a button.
  async function loadFacets(f, now, signal) {
    const T = tr.clause(range);
    const b = base(f);
    const inner = [
      {field: 'node_type', label: t('facet.nodeType')},
      {field: 'tool_name', label: t('facet.tool')},
      {field: 'model_name', label: t('facet.model')},
    ];
    let settings = {};
    try { settings = await api.get('/api/v1/settings', {signal}); } catch (e) { if (e.name === 'AbortError') return; }
    const labels = (settings.metrics && settings.metrics.labels) || [];
    const ruleTags = (settings.tag_rules || []).map((r) => r.name).filter((n) => n && !labels.includes(n));
    const tagField = (k) => (/^[A-Za-z0-9_.-]+$/.test(k) ? `tags.${k}` : `tags[${api.quote(k)}]`);
    clear(facets);
    const box = (g, note) => {
      const list = h('div', {class: 'facet-list'}, h('div', {class: 'skeleton small'}));
      facets.appendChild(h('div', {class: 'facet', dataset: {facet: g.field}}, h('div', {class: 'facet-title'}, g.label,
        note ? h('span', {class: 'facet-note'}, note) : null), list));
      return list;
    };
    const term = (field, v, contains) => {
      const cond = v == null ? `NOT ${field} exists` : `${field}=${api.quote(v)}`;
      return contains ? `run has (${cond})` : cond;
    };
    const toggle = (tm) => {
      const cur = filter;
      if (cur.includes(tm)) filter = cur.replace(tm, '').replace(/\s{2,}/g, ' ').trim();
      else filter = cur ? `${cur} ${tm}` : tm;
      bar.value = filter;
      restart();
    };
    const render = (list, rows, field, {contains = false, names = null} = {}) => {
      if (!rows.length) { replace(list, h('div', {class: 'muted small'}, t('facet.none'))); return; }
      const max = Math.max(...rows.map((r) => r.n));
      const shown = (r) => {
        const v = r[field];
        if (v == null) return t('common.unset');
        if (field === 'status') return t(`status.${v}`);
        return (names && names.get(v)) || v;
      };
      replace(list, rows.map((r) => {
        const tm = term(field, r[field], contains);
        const on = filter.includes(tm);
        return h('button', {class: ['facet-item', on && 'on'], dataset: {value: r[field] ?? ''}, title: tm, onclick: () => toggle(tm)},
          h('span', {class: 'facet-bar', style: {width: `${(r.n / max) * 100}%`}}),
          h('span', {class: 'facet-value'}, shown(r)),
          h('span', {class: 'facet-count'}, fmt.compact(r.n)));
      }));
    };
    const fail = (list) => (e) => { if (e.name !== 'AbortError') replace(list, h('div', {class: 'muted small'}, '—')); };
    // A facet counted now: `q` gives rows of {field, n}.
    const eager = async (list, field, q, opts = {}) => {
      try {
        const res = await api.query(q, {now, signal});
        const rows = res.rows.filter((r) => !(field.startsWith('tags') && r[field] == null));
        const names = opts.names ? await opts.names(rows) : null;
        render(list, rows, field, {...opts, names});
      } catch (e) { fail(list)(e); }
    };
    // A facet counted when asked (a scan).
    const lazy = (list, field, q, opts = {}) => replace(list, h('button', {class: 'link small', dataset: {action: 'count-facet'},
      onclick: () => { replace(list, h('div', {class: 'skeleton small'})); eager(list, field, q, opts); }}, t('facet.count')));
    const byField = (field) => `${b.text} | by ${field} | count() as n | sort n desc | limit 8`;
    const [fromNs, toNs] = tr.bounds(range);
    const appNamesOf = (rows) => appNames(rows.map((r) => r.app_id).filter(Boolean), toNs, fromNs,
      (q) => api.query(q, {now, signal}));
    const jobs = [
      eager(box({field: 'status', label: t('facet.status')}), 'status', byField('status')),
      eager(box({field: 'app_id', label: t('facet.app')}), 'app_id', byField('app_id'), {names: appNamesOf}),
      ...labels.map((l) => eager(box({field: tagField(l), label: `#${l}`}), tagField(l), byField(tagField(l)))),
    ];
    for (const k of ruleTags) lazy(box({field: tagField(k), label: `#${k}`}), tagField(k), byField(tagField(k)));
    if (mode === 'spans') {
      jobs.push(...inner.map((g) => eager(box(g), g.field, byField(g.field))));
    } else if (!f) {
      // Calls of each node type, tool and model in the range (rollups); a
      // click keeps the runs containing one.
      jobs.push(...inner.map((g) => eager(box(g, t('facet.callsNote')), g.field,
        `${T} ${g.field} exists | by ${g.field} | count() as n | sort n desc | limit 8`, {contains: true})));
    } else if (hasRunHas(f)) {
      for (const g of inner) replace(box(g, t('facet.containsNote')), h('div', {class: 'muted small'}, t('facet.unavailable')));
    } else {
      const within = ` run has (span_kind=workflow (${f}))`;
      for (const g of inner) {
        lazy(box(g, t('facet.containsNote')), g.field,
          `${T} ${g.field} exists${within} | by ${g.field} | count_distinct(run_id) as n | sort n desc | limit 8`, {contains: true});
      }
    }
    await Promise.all(jobs);
  }

  async function doExport(format) {
    const [f, stages] = splitPipe(filter);
    const b = base(f);
    const text = stages != null ? `${b.text} | ${stages}` : `${b.text} | sort start_time desc, span_id desc`;
    toast.textContent = t('runs.exporting');
    toast.hidden = false;
    try {
      const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
      const size = await api.download(text, format, {filename: `loupe-${mode}-${stamp}.${format}`});
      toast.textContent = t('runs.exported', {size: fmt.compact(size)});
    } catch (e) {
      toast.textContent = e.message;
    }
    setTimeout(() => { toast.hidden = true; }, 4000);
  }

  restart();
  return () => {
    document.removeEventListener('click', onDoc);
    if (controller) controller.abort();
    window.loupeLastQuery = lastSent;
  };
}
