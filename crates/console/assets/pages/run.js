// Run view: every span of a run as a tree with a waterfall (iterations and
// loops nested under their node, parallel branches side by side in time),
// and the selected span's input, output, error, model, tokens, cost,
// attributes and tags. Rows are virtualised: only the visible ones exist,
// so a run of thousands of spans stays responsive.
import {h, icon, replace, clear} from '../dom.js';
import {t} from '../i18n.js';
import * as api from '../api.js';
import * as fmt from '../format.js';
import {payload} from '../json.js';
import {logTable} from './logs.js';

const ROW = 30;
const OVERSCAN = 12;

const KIND_COLOR = {
  workflow: '#3d71d9', llm: '#8b5cf6', tool: '#f2a33a', retrieval: '#22a5c9', agent: '#c2610c', chain: '#7c8a9e',
  embedding: '#2fb38a', rerank: '#2fb38a', http: '#e0606e', code: '#5b6b82', branch: '#a3acb9', other: '#a3acb9',
};

function buildTree(spans) {
  const byId = new Map(spans.map((s) => [s.span_id, {span: s, children: [], depth: 0}]));
  const roots = [];
  for (const n of byId.values()) {
    const p = n.span.parent_span_id && byId.get(n.span.parent_span_id);
    if (p && p !== n) p.children.push(n);
    else roots.push(n);
  }
  const order = (a, b) => (Number(a.span.start_time ?? 0) - Number(b.span.start_time ?? 0)) || String(a.span.span_id).localeCompare(b.span.span_id);
  const flat = [];
  const seen = new Set();
  const walk = (starts) => {
    const stack = starts.sort(order).map((n) => [n, 0]).reverse();
    while (stack.length) {
      const [n, d] = stack.pop();
      if (seen.has(n)) continue;
      seen.add(n);
      n.depth = d;
      flat.push(n);
      n.children.sort(order);
      for (let i = n.children.length - 1; i >= 0; i--) stack.push([n.children[i], d + 1]);
    }
  };
  walk(roots);
  // Spans whose parent links form a loop have no root: cut the loop above
  // the earliest of them and show it as a root, until every span is placed.
  for (;;) {
    const stranded = [...byId.values()].filter((n) => !seen.has(n));
    if (!stranded.length) break;
    const top = stranded.sort(order)[0];
    const p = byId.get(top.span.parent_span_id);
    if (p) p.children = p.children.filter((c) => c !== top);
    roots.push(top);
    walk([top]);
  }
  for (const n of flat) {
    n.parent = n.parent || null;
    for (const c of n.children) c.parent = n;
  }
  // Subtree sizes and error markers, bottom-up.
  for (let i = flat.length - 1; i >= 0; i--) {
    const n = flat[i];
    n.size = 1 + n.children.reduce((a, c) => a + c.size, 0);
    n.errorInside = n.children.some((c) => c.span.status === 'error' || c.errorInside);
    // A span without an end (a Langfuse trace, a run still going) reaches
    // as far as its subtree does.
    const own = n.span.end_time ?? n.span.start_time;
    n.end = n.children.reduce((a, c) => Math.max(a, c.end), own == null ? 0 : Number(own));
  }
  return {roots, flat, byId};
}

// The node the run failed at: an error span none of whose children failed
// (the deepest), preferring nodes over the run's own root spans.
function failingNode(flat) {
  const leaves = flat.filter((n) => n.span.status === 'error' && !n.errorInside);
  return leaves.find((n) => !['workflow', 'chain'].includes(n.span.span_kind) || n.depth > 1) || leaves[0] || null;
}

// The duration beside its bar: after it, before it, or inside a wide bar.
function durLabel(left, width, text) {
  if (left + width <= 80) return h('span', {class: 'wf-dur', style: {left: `calc(${left + width}% + 6px)`}}, text);
  if (left >= 14) return h('span', {class: 'wf-dur', style: {right: `calc(${100 - left}% + 6px)`}}, text);
  return h('span', {class: 'wf-dur inside', style: {right: `calc(${100 - left - width}% + 6px)`}}, text);
}

function kv(label, value, extra = {}) {
  if (value == null || value === '') return null;
  return h('div', {class: 'kv', ...extra}, h('dt', {}, label), h('dd', {}, value));
}

function copyBtn(text) {
  return h('button', {class: 'btn icon-only small', title: t('common.copy'), onclick: () => navigator.clipboard && navigator.clipboard.writeText(text)}, icon('copy', 12));
}

const PAYLOAD_LIMIT = 8192;

// Dify's console URL when this project's Dify is configured with one
// (GET /api/v1/settings, asked once per page load); null otherwise.
let difyWeb = null;
function difyWebUrl() {
  if (!difyWeb) {
    difyWeb = api.get('/api/v1/settings').then((s) => (s && s.dify && s.dify.web_url) || null).catch(() => null);
  }
  return difyWeb;
}

function sizeText(bytes) {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MB` : `${Math.ceil(bytes / 1024)} KB`;
}

export function mount(ctx) {
  const id = ctx.params.id;
  ctx.setTitle(t('run.title'), [[t('nav.runs'), '/runs']]);
  replace(ctx.el, h('div', {class: 'panel'}, h('div', {class: 'skeleton tall'})));
  const controller = new AbortController();
  let onResize = null;
  // Payloads over PAYLOAD_LIMIT bytes arrive cut; the detail loads them whole
  // on demand, so a run of large prompts opens as fast as a small one.
  Promise.all([
    api.get(`/api/v1/traces/${encodeURIComponent(id)}?payload_limit=${PAYLOAD_LIMIT}`, {signal: controller.signal}),
    difyWebUrl(),
  ]).then(([data, web]) => {
    onResize = render(ctx, id, data.spans, web);
  }).catch((e) => {
    if (e.name === 'AbortError') return;
    replace(ctx.el, h('div', {class: 'empty-state', dataset: {testid: 'run-missing'}},
      h('h2', {}, e.status === 404 ? t('run.notFound') : t('run.failed')),
      h('p', {class: 'muted'}, e.message),
      h('a', {class: 'btn', href: '/runs'}, t('run.back'))));
  });
  return () => {
    controller.abort();
    if (onResize) window.removeEventListener('resize', onResize);
  };
}

function render(ctx, id, spans, difyUrl) {
  const tree = buildTree(spans);
  const collapsed = new Set();
  const root = tree.flat.find((n) => n.span.span_kind === 'workflow') || tree.flat[0];
  const rs = root.span;
  // reduce, not Math.min(...): a spread of very many arguments overflows the stack.
  const first = spans.reduce((a, s) => (s.start_time == null ? a : Math.min(a, Number(s.start_time))), Infinity);
  const t0 = Number.isFinite(first) ? first : 0;
  const t1 = Math.max(spans.reduce((a, s) => Math.max(a, Number(s.end_time ?? s.start_time ?? 0)), 0), t0 + 1);
  const total = t1 - t0;
  const tokens = spans.reduce((a, s) => a + (s.span_kind === 'llm' ? (s.total_tokens || 0) : 0), 0)
    || spans.reduce((a, s) => Math.max(a, s.total_tokens || 0), 0);
  const cost = spans.reduce((a, s) => a + (s.cost || 0), 0);
  const failing = failingNode(tree.flat);
  const runStatus = rs.status || (failing ? 'error' : 'unset');
  ctx.setTitle(rs.app_name ? `${rs.app_name} · ${fmt.short(rs.run_id || rs.trace_id || id, 8)}` : t('run.title'), [[t('nav.runs'), '/runs']]);

  let selected = tree.byId.get(ctx.search.get('span')) || failing || root;
  // Open the way to the selected span.

  const header = h('div', {class: 'run-head', dataset: {testid: 'run-head', status: runStatus}},
    h('div', {class: 'run-head-main'},
      h('span', {class: ['badge big', `st-${runStatus}`]}, t(`status.${runStatus}`)),
      h('div', {class: 'run-ids'},
        h('div', {class: 'run-name'}, rs.app_name || rs.name || t('run.title')),
        h('div', {class: 'muted small mono'}, rs.run_id || rs.trace_id || id, copyBtn(rs.run_id || rs.trace_id || id)))),
    h('dl', {class: 'run-facts'},
      kv(t('run.started'), Number.isFinite(first) ? fmt.time(t0, {ms: true}) : '—'),
      kv(t('run.duration'), fmt.duration(rs.duration ?? total)),
      kv(t('run.spans'), fmt.num(spans.length)),
      kv(t('run.tokens'), tokens ? fmt.num(tokens) : '—'),
      kv(t('run.cost'), cost ? fmt.cost(cost, rs.currency) : '—'),
      kv(t('run.user'), rs.user_id ? h('a', {href: `/users/${encodeURIComponent(rs.user_id)}`}, rs.user_id) : null),
      kv(t('run.session'), rs.session_id ? h('a', {href: `/sessions/${encodeURIComponent(rs.session_id)}`}, fmt.short(rs.session_id, 12)) : null),
      kv(t('run.source'), rs.source),
      difyUrl && rs.app_id ? kv(t('run.dify'), h('a', {class: 'dify-link', dataset: {testid: 'dify-link'},
        href: `${difyUrl.replace(/\/+$/, '')}/app/${encodeURIComponent(rs.app_id)}/logs`, target: '_blank', rel: 'noopener noreferrer'},
        t('run.openInDify'), icon('external', 12))) : null,
      Object.keys(rs.tags || {}).length ? kv(t('run.tags'), h('span', {class: 'chips'}, Object.entries(rs.tags).map(([k, v]) => h('span', {class: 'chip'}, `${k}: ${v}`)))) : null));

  const banner = failing ? h('button', {class: 'fail-banner', dataset: {testid: 'fail-banner'}, onclick: () => select(failing, true)},
    icon('alert', 16),
    h('span', {}, t('run.failedAt', {node: failing.span.name || failing.span.span_id})),
    h('span', {class: 'fail-msg'}, failing.span.error_message || failing.span.raw_status || '')) : null;

  // Waterfall.
  const scroller = h('div', {class: 'wf-scroll', dataset: {testid: 'waterfall'}});
  const spacer = h('div', {class: 'wf-spacer'});
  const rowsBox = h('div', {class: 'wf-rows'});
  scroller.append(spacer, rowsBox);
  const ticks = h('div', {class: 'wf-ticks'});
  for (let i = 0; i <= 4; i++) {
    ticks.appendChild(h('span', {class: 'wf-tick', style: {left: `${i * 25}%`}}, fmt.duration((total * i) / 4)));
  }
  const detail = h('div', {class: 'detail', dataset: {testid: 'span-detail'}});
  const search = h('input', {class: 'wf-search', placeholder: t('run.findSpan'), oninput: () => { visible = computeVisible(); draw(true); }});
  const expandAll = h('button', {class: 'btn small', onclick: () => { collapsed.clear(); visible = computeVisible(); draw(true); }}, t('run.expandAll'));
  const collapseAll = h('button', {class: 'btn small', onclick: () => {
    for (const n of tree.flat) if (n.children.length && n.depth >= 1) collapsed.add(n.span.span_id);
    visible = computeVisible(); draw(true);
  }}, t('run.collapseAll'));

  // The run's log lines, by its trace id or run id (GET /api/v1/traces/{id}/logs).
  const logsPanel = h('section', {class: 'panel logs-panel', dataset: {testid: 'run-logs'}},
    h('h3', {}, t('run.logs')), h('div', {class: 'skeleton'}));
  async function loadLogs() {
    const ids = [...new Set([id, rs.run_id, rs.trace_id].filter(Boolean))];
    try {
      const pages = await Promise.all(ids.map((x) => api.get(`/api/v1/traces/${encodeURIComponent(x)}/logs?limit=500`)));
      const seen = new Set();
      const records = pages.flatMap((p) => p.records || [])
        .filter((r) => { const k = `${r.time}|${r.body}|${r.stream}`; if (seen.has(k)) return false; seen.add(k); return true; })
        .sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
      replace(logsPanel, h('h3', {}, t('run.logs')),
        records.length ? logTable(records, {withRun: false}) : h('p', {class: 'muted', dataset: {testid: 'run-no-logs'}}, t('run.noLogs')));
    } catch (e) {
      replace(logsPanel, h('h3', {}, t('run.logs')), h('p', {class: 'muted'}, e.message));
    }
  }

  replace(ctx.el, header, banner,
    h('div', {class: 'run-body'},
      h('section', {class: 'panel wf-panel'},
        h('div', {class: 'wf-toolbar'}, search, expandAll, collapseAll, h('span', {class: 'muted small'}, t('run.spanCount', {n: fmt.num(spans.length)}))),
        h('div', {class: 'wf-head'}, h('div', {class: 'wf-head-name'}, t('run.span')), h('div', {class: 'wf-head-time'}, ticks)),
        scroller),
      h('section', {class: 'panel detail-panel'}, detail)),
    logsPanel);
  loadLogs();

  function computeVisible() {
    const q = search.value.trim().toLowerCase();
    if (q) {
      return tree.flat.filter((n) => [n.span.name, n.span.node_type, n.span.tool_name, n.span.model_name, n.span.span_id]
        .some((x) => x && String(x).toLowerCase().includes(q)));
    }
    const out = [];
    let skipDepth = Infinity;
    for (const n of tree.flat) {
      if (n.depth > skipDepth) continue;
      skipDepth = Infinity;
      out.push(n);
      if (collapsed.has(n.span.span_id)) skipDepth = n.depth;
    }
    return out;
  }

  let visible = computeVisible();
  let lastRange = '';

  function rowEl(n, i) {
    const sp = n.span;
    const st = Number(sp.start_time ?? t0);
    const open = sp.end_time == null;
    const en = open ? Math.max(st, n.end) : Number(sp.end_time);
    const left = ((st - t0) / total) * 100;
    const width = Math.max(0.3, ((en - st) / total) * 100);
    const isErr = sp.status === 'error';
    const color = KIND_COLOR[sp.span_kind] || KIND_COLOR.other;
    const label = sp.tool_name || sp.model_name;
    return h('div', {
      class: ['wf-row', isErr && 'is-error', n === selected && 'selected', n === failing && 'failing'],
      style: {top: `${i * ROW}px`}, role: 'treeitem', dataset: {span: sp.span_id, name: sp.name || '', status: sp.status || ''},
      onclick: () => select(n),
    },
    h('div', {class: 'wf-name', style: {paddingLeft: `${8 + n.depth * 16}px`}},
      n.children.length ? h('button', {class: ['wf-toggle', !collapsed.has(sp.span_id) && 'open'], 'aria-label': t('run.toggle'),
        onclick: (e) => {
          e.stopPropagation();
          if (collapsed.has(sp.span_id)) collapsed.delete(sp.span_id); else collapsed.add(sp.span_id);
          visible = computeVisible();
          draw(true);
        }}, icon('chevron', 12)) : h('span', {class: 'wf-toggle-space'}),
      h('span', {class: 'wf-kind', style: {background: color}, title: sp.span_kind || ''}),
      h('span', {class: 'wf-label'}, sp.name || sp.span_id),
      label ? h('span', {class: 'wf-sub'}, label) : null,
      isErr ? h('span', {class: 'wf-err-dot', title: sp.error_message || ''}, icon('alert', 12)) : (n.errorInside && collapsed.has(sp.span_id) ? h('span', {class: 'wf-err-dot dim'}, icon('alert', 12)) : null),
      n.children.length && collapsed.has(sp.span_id) ? h('span', {class: 'wf-more'}, `+${n.size - 1}`) : null),
    h('div', {class: 'wf-time'},
      h('div', {class: ['wf-bar', open && 'open'], style: {left: `${left}%`, width: `${width}%`, background: isErr ? '#e5484d' : color}}),
      durLabel(left, width, fmt.duration(en - st))));
  }

  function draw(force = false) {
    spacer.style.height = `${visible.length * ROW}px`;
    const top = scroller.scrollTop;
    const from = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const to = Math.min(visible.length, Math.ceil((top + scroller.clientHeight) / ROW) + OVERSCAN);
    const key = `${from}:${to}`;
    if (!force && key === lastRange) return;
    lastRange = key;
    clear(rowsBox);
    for (let i = from; i < to; i++) rowsBox.appendChild(rowEl(visible[i], i));
  }

  function select(n, reveal = false) {
    selected = n;
    if (reveal || !visible.includes(n)) {
      // Expand its ancestors and scroll to it.
      for (let p = n.parent; p; p = p.parent) collapsed.delete(p.span.span_id);
      visible = computeVisible();
    }
    const i = visible.indexOf(n);
    if (i >= 0 && (i * ROW < scroller.scrollTop || (i + 1) * ROW > scroller.scrollTop + scroller.clientHeight)) {
      scroller.scrollTop = Math.max(0, i * ROW - scroller.clientHeight / 3);
    }
    draw(true);
    showDetail(n);
    const p = new URLSearchParams(location.search);
    p.set('span', n.span.span_id);
    history.replaceState({}, '', `${location.pathname}?${p}`);
  }

  function section(title, body, {open = true, testid} = {}) {
    return h('details', {class: 'section', open, dataset: testid ? {testid} : {}}, h('summary', {}, title), body);
  }

  // A payload the server cut: its start, and a button loading the span whole.
  function cutPayload(n, field) {
    const sp = n.span;
    const full = sp.payload_cut && sp.payload_cut[field];
    if (!full) return payload(sp[field]);
    const msg = h('span', {class: 'muted small'});
    const btn = h('button', {class: 'btn small', dataset: {testid: `load-${field}`}, onclick: async () => {
      btn.disabled = true;
      try {
        const res = await api.get(`/api/v1/traces/${encodeURIComponent(id)}/spans/${encodeURIComponent(sp.span_id)}`);
        n.span = {...res.span};
        if (selected === n) showDetail(n);
      } catch (e) {
        btn.disabled = false;
        msg.textContent = ` ${e.message}`;
      }
    }}, t('run.loadFull', {size: sizeText(full)}));
    return h('div', {class: 'cut-payload', dataset: {cut: String(full)}},
      h('pre', {class: 'json-text'}, `${sp[field]}…`),
      h('div', {class: 'form-row'}, btn, h('span', {class: 'muted small'}, t('run.cutNote', {shown: sizeText(sp[field].length)})), msg));
  }

  function showDetail(n) {
    const sp = n.span;
    const attrs = Object.entries(sp.attributes || {}).sort(([a], [b]) => a.localeCompare(b));
    const tags = Object.entries(sp.tags || {});
    replace(detail,
      h('div', {class: 'detail-head'},
        h('span', {class: 'wf-kind big', style: {background: KIND_COLOR[sp.span_kind] || KIND_COLOR.other}}),
        h('div', {class: 'detail-title'},
          h('h2', {dataset: {testid: 'span-name'}}, sp.name || sp.span_id),
          h('div', {class: 'muted small'}, [sp.span_kind, sp.node_type].filter(Boolean).join(' · '))),
        h('span', {class: ['badge', `st-${sp.status || 'unset'}`]}, t(`status.${sp.status || 'unset'}`))),
      sp.status === 'error' || sp.error_message ? h('div', {class: 'error-box', dataset: {testid: 'span-error'}},
        h('div', {class: 'error-title'}, icon('alert', 14), sp.error_class || t('run.error')),
        h('pre', {}, sp.error_message || sp.raw_status || t('run.noMessage'))) : null,
      h('dl', {class: 'facts-grid'},
        kv(t('run.started'), fmt.time(sp.start_time, {ms: true})),
        kv(t('run.duration'), fmt.duration(sp.duration)),
        kv(t('run.offset'), `+${fmt.duration(Number(sp.start_time ?? t0) - t0)}`),
        kv(t('run.model'), sp.model_name ? `${sp.model_name}${sp.model_provider ? ` (${sp.model_provider})` : ''}` : null),
        kv(t('run.tool'), sp.tool_name),
        kv(t('run.tokens'), sp.total_tokens != null || sp.input_tokens != null
          ? `${fmt.num(sp.total_tokens ?? (sp.input_tokens || 0) + (sp.output_tokens || 0))} (${fmt.num(sp.input_tokens ?? 0)} → ${fmt.num(sp.output_tokens ?? 0)})` : null),
        kv(t('run.cost'), sp.cost != null ? fmt.cost(sp.cost, sp.currency) : null),
        kv(t('run.rawStatus'), sp.raw_status),
        kv(t('run.spanId'), h('span', {class: 'mono'}, sp.span_id)),
        kv(t('run.parent'), sp.parent_span_id ? h('span', {class: 'mono'}, sp.parent_span_id) : null)),
      tags.length ? h('div', {class: 'chips'}, tags.map(([k, v]) => h('span', {class: 'chip'}, `${k}: ${v}`))) : null,
      section(t('run.input'), cutPayload(n, 'input'), {testid: 'span-input'}),
      section(t('run.output'), cutPayload(n, 'output'), {testid: 'span-output'}),
      attrs.length ? section(`${t('run.attributes')} (${attrs.length})`,
        h('table', {class: 'attr-table'}, h('tbody', {}, attrs.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, payload(v)))))),
        {open: attrs.length <= 12}) : null);
  }

  // Keyboard: up/down move the selection, right/left open and fold.
  scroller.tabIndex = 0;
  scroller.addEventListener('keydown', (e) => {
    const i = visible.indexOf(selected);
    const id = selected.span.span_id;
    if (e.key === 'ArrowDown' && i < visible.length - 1) select(visible[i + 1]);
    else if (e.key === 'ArrowUp' && i > 0) select(visible[i - 1]);
    else if (e.key === 'ArrowRight' && selected.children.length && collapsed.has(id)) {
      collapsed.delete(id); visible = computeVisible(); draw(true);
    } else if (e.key === 'ArrowLeft' && selected.children.length && !collapsed.has(id)) {
      collapsed.add(id); visible = computeVisible(); draw(true);
    } else return;
    e.preventDefault();
  });
  let frame = 0;
  scroller.addEventListener('scroll', () => {
    if (frame) return;
    frame = requestAnimationFrame(() => { frame = 0; draw(); });
  });
  const onResize = () => draw(true);
  window.addEventListener('resize', onResize);
  // Large runs open with deep subtrees folded (the failing path stays open).
  if (spans.length > 300) {
    for (const n of tree.flat) if (n.children.length && n.depth >= 2 && !n.errorInside) collapsed.add(n.span.span_id);
    visible = computeVisible();
  }
  requestAnimationFrame(() => select(selected, true));
  return onResize;
}
