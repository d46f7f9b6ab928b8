// The Dify database's health on the Dify page (GET /api/v1/dify/health,
// /api/v1/dify/cleanups): size and growth per table with projections,
// what the last cleanups freed, the recommendation (the dry run's own
// estimate), upkeep (dead rows, autovacuum, oldest rows), load (sessions,
// long queries, lock waits) and the seed's correlation from Loupe's own
// data: workflow p95 (the query language) beside the database's latency
// probe and lock waits, on the same time axis.
import {h, icon} from '../dom.js';
import {t} from '../i18n.js';
import * as api from '../api.js';
import * as fmt from '../format.js';
import * as charts from '../charts.js';
import {section, kv, failure, empty} from '../widgets.js';

const EXEC = ['workflow_node_executions', 'workflow_runs', 'workflow_app_logs', 'messages', 'workflow_node_execution_offload', 'message_feedbacks'];

export function bytes(n) {
  if (n == null || Number.isNaN(n)) return '—';
  const neg = n < 0;
  let v = Math.abs(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u += 1; }
  return `${neg ? '-' : ''}${v >= 100 || u === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`;
}

function secsDate(s) {
  return s == null ? t('dify.never') : fmt.time(s * 1e9, {seconds: false});
}

function stat(id, label, value, sub, cls) {
  return h('div', {class: 'stat', dataset: {stat: id}}, h('div', {class: 'stat-label'}, label),
    h('div', {class: ['stat-value', cls]}, value), sub ? h('div', {class: 'stat-sub'}, sub) : null);
}

// Chart points (irregular sample times) → buckets of `step` ns, the last
// value of each bucket.
function bucketed(points, key, from, step) {
  const m = new Map();
  for (const p of points) {
    const ns = p.at * 1e9;
    if (ns < from) continue;
    const v = key(p);
    if (v != null) m.set(Math.floor(ns / step) * step, v);
  }
  return m;
}

function span(points) {
  const nowNs = Date.now() * 1e6;
  const first = points.length ? points[0].at * 1e9 : nowNs - 3600e9;
  const from = Math.min(first, nowNs - 3600e9);
  const step = Math.max(60e9, Math.ceil((nowNs - from) / 90 / 60e9) * 60e9);
  return {from, to: nowNs + step, step};
}

function growthChart(d) {
  const pts = d.chart || [];
  const {from, to, step} = span(pts);
  const names = EXEC.filter((n) => pts.some((p) => p.tables && p.tables[n] != null));
  const series = [{name: t('dify.h.database'), color: charts.PALETTE[7], values: bucketed(pts, (p) => p.database_bytes, from, step)}]
    .concat(names.map((n, i) => ({name: n, color: charts.PALETTE[i % 7], values: bucketed(pts, (p) => p.tables[n], from, step)})));
  return charts.timeSeries({series, from, to, step, kind: 'line', format: bytes, height: 220, empty: t('dify.h.noHistory')});
}

// The correlation: workflow p95 from the store, the probe and lock waits
// from the samples, over the same window (at most the last 7 days).
async function correlation(d, signal) {
  const pts = d.chart || [];
  const nowMs = Date.now();
  const hours = Math.min(168, Math.max(1, Math.ceil((nowMs / 1e3 - (pts.length ? pts[0].at : nowMs / 1e3 - 3600)) / 3600)));
  const stepText = hours <= 2 ? '1m' : hours <= 12 ? '10m' : hours <= 48 ? '30m' : '1h';
  const step = {'1m': 60e9, '10m': 600e9, '30m': 1800e9, '1h': 3600e9}[stepText];
  const to = nowMs * 1e6;
  const from = to - hours * 3600e9;
  let p95 = new Map();
  let note = null;
  try {
    const res = await api.query(`span_kind=workflow last ${hours}h | by bucket(${stepText}) | p95(duration) as p95`,
      {now: new Date(nowMs).toISOString(), signal, approx: true});
    p95 = new Map(res.rows.filter((r) => r.p95 != null).map((r) => [Number(r.bucket), r.p95 / 1e9]));
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    note = failure(e, t('dify.h.readLatency'));
  }
  const lat = charts.timeSeries({series: [{name: t('dify.h.p95'), color: charts.PALETTE[2], values: p95}],
    from, to, step, kind: 'line', format: (v) => fmt.duration(v * 1e9), height: 160});
  const db = charts.timeSeries({series: [
    {name: t('dify.h.probe'), color: charts.PALETTE[0], values: bucketed(pts, (p) => p.probe_ms, from, step)},
    {name: t('dify.h.lockWaits'), color: charts.ERR, values: bucketed(pts, (p) => p.lock_waits, from, step)},
    {name: t('dify.h.active'), color: charts.PALETTE[1], values: bucketed(pts, (p) => p.active, from, step)},
  ], from, to, step, kind: 'line', format: fmt.compact, height: 160, empty: t('dify.h.noHistory')});
  return [note, h('div', {class: 'muted small'}, t('dify.h.p95Axis')), lat, h('div', {class: 'muted small'}, t('dify.h.dbAxis')), db];
}

function tablesTable(d) {
  const s = d.sample;
  const g = d.growth || {};
  return h('table', {class: 'table', dataset: {testid: 'dify-db-tables'}},
    h('thead', {}, h('tr', {}, [t('dify.table'), t('dify.h.total'), t('dify.h.heap'), t('dify.h.toast'), t('dify.h.indexes'),
      t('dify.h.rows'), t('dify.h.dead'), t('dify.h.autovacuum'), t('dify.h.oldest'), t('dify.h.perDay'), t('dify.h.in90')]
      .map((c, i) => h('th', {class: i ? 'num' : ''}, c)))),
    h('tbody', {}, s.tables.slice(0, 15).map((x) => {
      const gr = g[x.table];
      const dead = x.live_rows + x.dead_rows > 0 ? x.dead_rows / (x.live_rows + x.dead_rows) : 0;
      return h('tr', {dataset: {table: x.table}},
        h('td', {class: 'mono'}, x.table), h('td', {class: 'num'}, bytes(x.total_bytes)), h('td', {class: 'num'}, bytes(x.heap_bytes)),
        h('td', {class: 'num'}, bytes(x.toast_bytes)), h('td', {class: 'num'}, bytes(x.index_bytes)),
        h('td', {class: 'num'}, fmt.num(x.live_rows)), h('td', {class: ['num', dead > 0.2 && 'warn-text']}, fmt.pct(dead)),
        h('td', {class: 'num'}, secsDate(x.last_autovacuum ?? x.last_vacuum)),
        h('td', {class: 'num'}, x.oldest_row != null ? secsDate(x.oldest_row) : ''),
        h('td', {class: 'num'}, gr ? bytes(gr.bytes_per_day) : ''), h('td', {class: 'num'}, gr ? bytes(gr.projected_90d_bytes) : ''));
    })));
}

function cleanupsTable(runs) {
  if (!runs.length) return empty(t('dify.h.noCleanups'), t('dify.h.noCleanupsHint'));
  return h('table', {class: 'table', dataset: {testid: 'dify-cleanups'}},
    h('thead', {}, h('tr', {}, [t('dify.h.started'), t('dify.h.source'), t('dify.h.scope'), t('dify.h.rowsDeleted'), t('dify.h.freed'),
      t('dify.h.took'), t('dify.h.skipped'), t('dify.h.latency')].map((c, i) => h('th', {class: i > 2 ? 'num' : ''}, c)))),
    h('tbody', {}, runs.map((r) => {
      const rep = r.report || {};
      const rows = Object.values(rep.deleted || {}).reduce((a, n) => a + n, 0);
      const skipped = (rep.skipped_unverified || 0) + (rep.skipped_locked || 0) + (rep.skipped_open || 0);
      const lat = rep.db_latency || {};
      return h('tr', {dataset: {dry: String(!!rep.dry_run)}},
        h('td', {}, fmt.time(Date.parse(r.started_at) * 1e6, {seconds: false})), h('td', {}, r.source),
        h('td', {}, `${rep.scope} · ${r.older_than}`, rep.dry_run ? h('span', {class: 'badge ph-pending'}, t('dify.h.dry')) : null,
          r.error ? h('span', {class: 'bad-text', title: r.error}, ' ', icon('alert', 12)) : null),
        h('td', {class: 'num'}, fmt.num(rows)), h('td', {class: 'num'}, bytes(rep.estimated_bytes_freed)),
        h('td', {class: 'num'}, fmt.duration((rep.elapsed_ms || 0) * 1e6)),
        h('td', {class: ['num', skipped && 'warn-text'], title: `unverified ${rep.skipped_unverified || 0}, locked ${rep.skipped_locked || 0}, open ${rep.skipped_open || 0}`}, fmt.num(skipped)),
        h('td', {class: 'num'}, lat.samples ? `${lat.baseline_ms.toFixed(1)} → ${lat.p95_ms.toFixed(1)} ms` : '—'));
    })));
}

function load(d) {
  const s = d.sample;
  const conns = Object.entries(s.connections || {}).map(([k, v]) => `${k} ${v}`).join(' · ');
  return [
    kv([[t('dify.h.sessions'), `${conns || '—'} (max ${s.max_connections})`],
      [t('dify.h.probe'), s.probe_ms != null ? `${s.probe_ms.toFixed(1)} ms` : null]], 'dify-load'),
    s.lock_waits.length ? h('ul', {class: 'plain', dataset: {testid: 'dify-lock-waits'}}, s.lock_waits.map((w) =>
      h('li', {class: 'bad-text'}, t('dify.h.waiting', {n: w.waiting, table: w.table, s: w.max_seconds.toFixed(1)})))) : h('p', {class: 'muted small'}, t('dify.h.noLockWaits')),
    s.long_queries.length ? h('ul', {class: 'plain', dataset: {testid: 'dify-long-queries'}}, s.long_queries.map((q) =>
      h('li', {}, h('span', {class: 'warn-text'}, `${q.seconds.toFixed(0)} s`), ` pid ${q.pid} ${q.state}${q.wait ? ` (${q.wait})` : ''} · `,
        h('code', {class: 'mono small'}, q.query)))) : h('p', {class: 'muted small'}, t('dify.h.noLongQueries')),
  ];
}

// The health sections into `box`; returns a refresh function.
export function mountHealth(box, signal) {
  async function refresh() {
    let d;
    try {
      d = await api.get('/api/v1/dify/health', {signal});
    } catch (e) {
      if (e.name !== 'AbortError') box.replaceChildren(failure(e, t('dify.h.canRead')));
      return;
    }
    if (!d.configured || d.available === false) { box.replaceChildren(); return; }
    if (!d.sample) {
      box.replaceChildren(section('dify-health', t('dify.h.title'), [empty(d.last_error || d.reason || t('dify.h.noSample'))]));
      return;
    }
    const s = d.sample;
    const nodes = s.tables.find((x) => x.table === 'workflow_node_executions');
    const ng = (d.growth || {}).workflow_node_executions;
    const dg = d.database_growth;
    const rec = s.recommendation;
    const lastReal = (d.cleanups || []).find((r) => !r.report.dry_run && !r.error);
    const corr = h('div', {class: 'stack', dataset: {testid: 'dify-correlation'}}, h('div', {class: 'skeleton'}));
    box.replaceChildren(
      h('div', {class: 'stats', dataset: {testid: 'dify-health-stats'}},
        stat('db-size', t('dify.h.dbSize'), bytes(s.database_bytes), dg ? t('dify.h.growth', {v: bytes(dg.bytes_per_day)}) : null),
        stat('nodes-size', t('dify.h.nodesSize'), nodes ? bytes(nodes.total_bytes) : '—', ng ? t('dify.h.growth', {v: bytes(ng.bytes_per_day)}) : null),
        stat('projected', t('dify.h.projected'), dg ? bytes(dg.projected_90d_bytes) : '—', dg ? t('dify.h.in30', {v: bytes(dg.projected_30d_bytes)}) : null),
        stat('freed', t('dify.h.freedTotal'), bytes((d.cleanup_totals || {}).bytes_freed || 0),
          lastReal ? t('dify.h.lastCleanup', {when: fmt.ago(Date.parse(lastReal.finished_at) * 1e6)}) : t('dify.h.noCleanupYet')),
        stat('waits', t('dify.h.lockWaits'), fmt.num(s.lock_waits.reduce((a, w) => a + w.waiting, 0)),
          t('dify.h.longQueries', {n: s.long_queries.length}), s.lock_waits.length ? 'bad' : 'good')),
      rec ? h('div', {class: 'panel callout', dataset: {testid: 'dify-recommendation'}},
        h('p', {}, icon('database', 14), ' ', t('dify.h.recommend', {table: rec.table, days: rec.older_than_days, v: bytes(rec.bytes), rows: fmt.compact(rec.rows)})),
        h('pre', {class: 'code'}, `loupe dify cleanup --dsn "$DIFY_DSN" --scope nodes --older-than ${rec.older_than_days}d --dry-run`),
        h('p', {class: 'muted small'}, t('dify.h.recommendHint'))) : null,
      h('div', {class: 'grid cols-2'},
        section('dify-growth', t('dify.h.growthTitle'), [growthChart(d)], {sub: t('dify.h.samples', {n: fmt.num((d.chart || []).length), every: d.interval || ''})}),
        section('dify-correlation', t('dify.h.corrTitle'), [corr], {sub: t('dify.h.corrSub')})),
      section('dify-tables-health', t('dify.h.tablesTitle'), [tablesTable(d),
        s.errors && s.errors.length ? h('p', {class: 'warn-text small'}, s.errors.join('; ')) : null], {sub: fmt.ago(s.at * 1e9)}),
      h('div', {class: 'grid cols-2'},
        section('dify-load', t('dify.h.loadTitle'), load(d)),
        section('dify-cleanups', t('dify.h.cleanupsTitle'), [cleanupsTable(d.cleanups || [])],
          {sub: t('dify.h.cleanupsSub', {n: fmt.num((d.cleanup_totals || {}).rows_deleted || 0), v: bytes((d.cleanup_totals || {}).bytes_freed || 0)})})));
    correlation(d, signal).then((nodes) => corr.replaceChildren(...nodes.filter(Boolean))).catch((e) => {
      if (e.name !== 'AbortError') corr.replaceChildren(failure(e, t('dify.h.readLatency')));
    });
  }
  refresh();
  return refresh;
}
