// Overview: runs, success rate, latency, tokens and cost over time, and
// breakdowns by app, node type, tool, model, business tags and error
// class. Every panel is an aggregate the hour rollups answer (latency
// percentiles from their histograms), so the page costs the same at any
// volume; app names come from a bounded look-up of the newest runs. Every
// bar and point opens the runs explorer on the matching runs.
import {h, icon, replace} from '../dom.js';
import {t} from '../i18n.js';
import * as api from '../api.js';
import * as fmt from '../format.js';
import * as tr from '../timerange.js';
import * as charts from '../charts.js';
import {tagKeys} from '../querybar.js';

function panel(id, title, {wide = false, sub} = {}) {
  const body = h('div', {class: 'panel-body loading'}, h('div', {class: 'skeleton'}));
  const el = h('section', {class: ['panel', wide && 'wide'], dataset: {panel: id}},
    h('header', {class: 'panel-head'}, h('h2', {}, title), sub ? h('span', {class: 'panel-sub'}, sub) : null),
    body);
  return {
    el,
    set(content, stats) {
      body.classList.remove('loading');
      replace(body, content);
      el.dataset.state = 'ready';
      if (stats) el.dataset.rollups = stats.from_rollups ? 'true' : 'false';
      if (stats && stats.approximate) el.dataset.approx = 'true';
    },
    fail(err) {
      body.classList.remove('loading');
      replace(body, h('div', {class: 'panel-error'}, icon('alert', 14), ' ', err.message));
      el.dataset.state = 'error';
    },
  };
}

function stat(id, label) {
  const value = h('div', {class: 'stat-value'}, '—');
  const sub = h('div', {class: 'stat-sub'});
  const spark = h('div', {class: 'stat-spark'});
  const el = h('div', {class: 'stat', dataset: {stat: id}}, h('div', {class: 'stat-label'}, label), value, sub, spark);
  return {el, value, sub, spark};
}

const seriesMap = (rows, key) => new Map(rows.map((r) => [Number(r.bucket), r[key]]));

// Names of apps (id → name) from their runs in the last hour before `to`,
// then the last day for the ones not seen: a look-up whose cost is bounded
// by a day of runs whatever the range. Apps without runs then show their id.
export async function appNames(ids, to, from, q, field = 'app_id') {
  const names = new Map();
  const HOUR = 3600e9;
  for (const span of [HOUR, 24 * HOUR]) {
    const missing = ids.filter((id) => !names.has(id));
    if (!missing.length) break;
    const start = Math.max(from, to - span);
    const iso = (ns) => new Date(ns / 1e6).toISOString();
    try {
      const res = await q(`from ${iso(start)} to ${iso(to)} span_kind=workflow ${field} in (${missing.map(api.quote).join(', ')}) exists app_name | by ${field}, app_name | count() as n | sort n desc`);
      for (const r of res.rows) if (!names.has(r[field])) names.set(r[field], r.app_name);
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      break;
    }
    if (start === from) break;
  }
  return names;
}

export function mount(ctx) {
  ctx.setTitle(t('overview.title'));
  let range = tr.fromParams(ctx.search);
  let refresh = Number(ctx.search.get('refresh') || 0);
  let timer = null;
  let controller = null;

  const setUrl = () => {
    const p = tr.toParams(range, new URLSearchParams());
    if (refresh) p.set('refresh', String(refresh));
    history.replaceState({}, '', `/?${p}`);
  };
  const actions = () => replace(ctx.actions,
    tr.picker(range, (r) => { range = r; setUrl(); actions(); load(); }),
    tr.autoRefresh(refresh, (s) => { refresh = s; setUrl(); schedule(); }),
    h('button', {class: 'btn icon-only', title: t('refresh.now'), onclick: () => load()}, icon('refresh')));
  actions();

  // Opens the runs explorer on a filter (and a time window).
  const explore = (filter, win) => {
    const p = new URLSearchParams();
    if (filter) p.set('q', filter);
    tr.toParams(win || range, p);
    ctx.go(`/runs?${p}`);
  };

  const stats = {
    runs: stat('runs', t('overview.runs')),
    success: stat('success', t('overview.successRate')),
    latency: stat('latency', t('overview.latency')),
    tokens: stat('tokens', t('overview.tokens')),
    cost: stat('cost', t('overview.cost')),
  };
  const p = {
    runs: panel('runs-over-time', t('overview.runsOverTime')),
    latency: panel('latency-over-time', t('overview.latencyOverTime'), {sub: t('overview.estimated')}),
    tokens: panel('tokens-over-time', t('overview.tokensOverTime')),
    cost: panel('cost-over-time', t('overview.costOverTime')),
    apps: panel('by-app', t('overview.byApp'), {sub: t('overview.runsErrorRate')}),
    workflows: panel('by-workflow', t('overview.byWorkflow'), {sub: t('overview.runsErrorRate')}),
    nodes: panel('by-node-type', t('overview.byNodeType'), {sub: t('overview.spansErrorRate')}),
    tools: panel('by-tool', t('overview.byTool'), {sub: t('overview.callsErrorRate')}),
    models: panel('by-model', t('overview.byModel'), {sub: t('overview.tokensCost')}),
    failingTools: panel('failing-tools', t('overview.failingTools'), {sub: t('overview.failures')}),
    errors: panel('error-classes', t('overview.errorClasses'), {sub: t('overview.failures')}),
  };
  const tagGrid = h('div', {class: 'grid cols-3 tag-panels'});
  replace(ctx.el,
    h('div', {class: 'stats'}, Object.values(stats).map((s) => s.el)),
    h('div', {class: 'grid cols-2'}, p.runs.el, p.latency.el, p.tokens.el, p.cost.el),
    h('div', {class: 'grid cols-3'}, p.apps.el, p.workflows.el, p.nodes.el, p.tools.el, p.models.el, p.failingTools.el, p.errors.el),
    tagGrid);

  async function load() {
    if (controller) controller.abort();
    controller = new AbortController();
    const {signal} = controller;
    const nowMs = Date.now();
    const now = new Date(nowMs).toISOString();
    const T = tr.clause(range);
    const [step, stepText] = tr.bucket(range);
    const [from, to] = tr.bounds(range, nowMs);
    const q = (text, opts = {}) => api.query(text, {now, signal, ...opts});
    const guard = (pn, promise, render) => promise.then((res) => pn.set(render(res), res.stats))
      .catch((e) => { if (e.name !== 'AbortError') pn.fail(e); });
    const series = (pn, rows, defs, opts) => charts.timeSeries({
      series: defs.map((d) => ({name: d.name, color: d.color, values: seriesMap(rows, d.key)})),
      from, to, step, ...opts,
    });
    const bucketWindow = (b) => ({kind: 'abs', from: b / 1e6, to: (b + step) / 1e6});

    // Runs over time: count and error rate per bucket (rollups).
    const runsQ = q(`span_kind=workflow ${T} | by bucket(${stepText}) | count() as n, error_rate() as err`);
    guard(p.runs, runsQ, (res) => {
      const rows = res.rows.map((r) => ({bucket: r.bucket, ok: Math.round(r.n * (1 - r.err)), error: Math.round(r.n * r.err)}));
      return series(p.runs, rows, [
        {name: t('status.ok'), color: charts.OK, key: 'ok'},
        {name: t('status.error'), color: charts.ERR, key: 'error'},
      ], {kind: 'stacked', format: fmt.compact, onClick: (b) => explore('', bucketWindow(b))});
    });
    runsQ.then((res) => {
      const n = res.rows.reduce((a, r) => a + r.n, 0);
      const err = res.rows.reduce((a, r) => a + r.n * r.err, 0);
      stats.runs.value.textContent = fmt.compact(n);
      stats.runs.sub.textContent = t('overview.failedRuns', {n: fmt.num(Math.round(err))});
      replace(stats.runs.spark, charts.sparkline(res.rows.map((r) => r.n)));
      stats.success.value.textContent = n ? fmt.pct(1 - err / n) : '—';
      stats.success.value.className = `stat-value ${n && err / n > 0.05 ? 'bad' : 'good'}`;
      stats.success.sub.textContent = t('overview.errorRate', {v: n ? fmt.pct(err / n) : '—'});
      replace(stats.success.spark, charts.sparkline(res.rows.map((r) => 1 - r.err), {color: charts.OK}));
    }).catch(() => {});

    // Latency percentiles of runs, estimated from the rollups' latency
    // histograms (as Prometheus' histogram_quantile); exact over short ranges.
    const approx = {approx: true};
    const latQ = q(`span_kind=workflow ${T} | by bucket(${stepText}) | p50(duration) as p50, p95(duration) as p95`, approx);
    guard(p.latency, latQ, (res) => series(p.latency, res.rows, [
      {name: 'p50', color: charts.PALETTE[0], key: 'p50'},
      {name: 'p95', color: charts.PALETTE[2], key: 'p95'},
    ], {kind: 'line', format: fmt.duration, onClick: (b) => explore('', bucketWindow(b))}));
    q(`span_kind=workflow ${T} | p50(duration) as p50, p95(duration) as p95`, approx).then((res) => {
      const r = res.rows[0] || {};
      stats.latency.value.textContent = r.p50 == null ? '—' : fmt.duration(r.p50);
      stats.latency.sub.textContent = `p95 ${r.p95 == null ? '—' : fmt.duration(r.p95)}`;
    }).catch(() => {});
    latQ.then((res) => replace(stats.latency.spark, charts.sparkline(res.rows.map((r) => r.p95), {color: charts.PALETTE[2]}))).catch(() => {});

    // Tokens and cost of model calls (rollups).
    const llmQ = q(`span_kind=llm ${T} | by bucket(${stepText}) | sum(total_tokens) as tokens, sum(cost) as spend, count() as calls`);
    guard(p.tokens, llmQ, (res) => series(p.tokens, res.rows, [
      {name: t('overview.tokens'), color: charts.PALETTE[3], key: 'tokens'},
    ], {kind: 'area', format: fmt.compact, onClick: (b) => explore('run has (span_kind=llm)', bucketWindow(b))}));
    guard(p.cost, llmQ, (res) => series(p.cost, res.rows, [
      {name: t('overview.cost'), color: charts.PALETTE[1], key: 'spend'},
    ], {kind: 'area', format: (v) => fmt.cost(v), onClick: (b) => explore('run has (span_kind=llm)', bucketWindow(b))}));
    llmQ.then((res) => {
      const tokens = res.rows.reduce((a, r) => a + (r.tokens || 0), 0);
      const cost = res.rows.reduce((a, r) => a + (r.spend || 0), 0);
      const calls = res.rows.reduce((a, r) => a + (r.calls || 0), 0);
      stats.tokens.value.textContent = fmt.compact(tokens);
      stats.tokens.sub.textContent = t('overview.llmCalls', {n: fmt.num(calls)});
      replace(stats.tokens.spark, charts.sparkline(res.rows.map((r) => r.tokens), {color: charts.PALETTE[3]}));
      stats.cost.value.textContent = fmt.cost(cost);
      stats.cost.sub.textContent = calls ? t('overview.perCall', {v: fmt.cost(cost / calls)}) : '';
      replace(stats.cost.spark, charts.sparkline(res.rows.map((r) => r.spend), {color: charts.PALETTE[1]}));
    }).catch(() => {});

    const errSub = (r) => (r.err ? t('overview.errPct', {v: fmt.pct(r.err)}) : '');
    const errColor = (r) => (r.err > 0.1 ? charts.ERR : r.err > 0.02 ? '#f2a33a' : charts.PALETTE[0]);

    // Runs per app from the rollups; names from the newest runs only.
    const appsQ = q(`span_kind=workflow ${T} | by app_id | count() as n, error_rate() as err | sort n desc | limit 8`);
    guard(p.apps, appsQ.then(async (res) => {
      const names = await appNames(res.rows.map((r) => r.app_id).filter(Boolean), to, from, q);
      return {...res, names};
    }), (res) => charts.barList(res.rows.map((r) => ({
      label: res.names.get(r.app_id) || fmt.short(r.app_id, 12) || t('common.unset'), value: r.n, sub: errSub(r), color: errColor(r),
      filter: r.app_id ? `app_id=${api.quote(r.app_id)}` : 'NOT app_id exists',
    })), {onClick: (r) => explore(r.filter)}));
    // Runs per workflow (a Dify app's workflow; versions share it), named
    // by their app, from the rollups.
    const wfQ = q(`span_kind=workflow workflow_id exists ${T} | by workflow_id | count() as n, error_rate() as err | sort n desc | limit 8`);
    guard(p.workflows, wfQ.then(async (res) => {
      const names = await appNames(res.rows.map((r) => r.workflow_id).filter(Boolean), to, from, q, 'workflow_id');
      return {...res, names};
    }), (res) => charts.barList(res.rows.map((r) => ({
      label: `${res.names.get(r.workflow_id) ? `${res.names.get(r.workflow_id)} · ` : ''}${fmt.short(r.workflow_id, 8)}`,
      value: r.n, sub: errSub(r), color: errColor(r), filter: `workflow_id=${api.quote(r.workflow_id)}`,
    })), {onClick: (r) => explore(r.filter)}));
    guard(p.nodes, q(`node_type exists ${T} | by node_type | count() as n, error_rate() as err | sort n desc | limit 10`),
      (res) => charts.barList(res.rows.map((r) => ({label: r.node_type, value: r.n, sub: errSub(r), color: errColor(r)})),
        {onClick: (r) => explore(`run has (node_type=${api.quote(r.label)})`)}));
    guard(p.tools, q(`span_kind=tool tool_name exists ${T} | by tool_name | count() as n, error_rate() as err | sort n desc | limit 10`),
      (res) => charts.barList(res.rows.map((r) => ({label: r.tool_name, value: r.n, sub: errSub(r), color: errColor(r)})),
        {onClick: (r) => explore(`run has (tool_name=${api.quote(r.label)})`)}));
    guard(p.models, q(`span_kind=llm model_name exists ${T} | by model_name | sum(total_tokens) as tokens, sum(cost) as spend, count() as n | sort tokens desc | limit 10`),
      (res) => charts.barList(res.rows.map((r) => ({label: r.model_name, value: r.tokens || 0, sub: fmt.cost(r.spend), color: charts.PALETTE[3]})),
        {onClick: (r) => explore(`run has (model_name=${api.quote(r.label)})`)}));
    guard(p.failingTools, q(`span_kind=tool status=error ${T} | by tool_name | count() as n | sort n desc | limit 8`),
      (res) => charts.barList(res.rows.map((r) => ({label: r.tool_name || t('common.unset'), value: r.n, color: charts.ERR})),
        {empty: t('overview.noFailures'), format: fmt.num,
          onClick: (r) => explore(`run has (tool_name=${api.quote(r.label)} status=error)`)}));
    guard(p.errors, q(`status=error exists error_class ${T} | by error_class | count() as n | sort n desc | limit 8`),
      (res) => charts.barList(res.rows.map((r) => ({label: r.error_class, value: r.n, color: charts.ERR})),
        {empty: t('overview.noFailures'), format: fmt.num,
          onClick: (r) => explore(`run has (error_class=${api.quote(r.label)})`)}));

    // One panel per business tag that is a rollup dimension ([metrics]
    // labels, from the settings); tags seen on runs when the server does
    // not say (a scan of the range's runs).
    api.get('/api/v1/settings', {signal}).then((s) => {
      const labels = s && s.metrics && s.metrics.labels;
      if (!Array.isArray(labels)) throw new Error('no labels');
      return labels;
    }).catch((e) => {
      if (e.name === 'AbortError') throw e;
      return tagKeys(range, {now, signal});
    }).then((keys) => {
      replace(tagGrid, keys.map((key) => {
        const pn = panel(`tag-${key}`, t('overview.byTag', {tag: key}), {sub: t('overview.runsSuccessRate')});
        const field = /^[A-Za-z0-9_.-]+$/.test(key) ? `tags.${key}` : `tags[${api.quote(key)}]`;
        guard(pn, q(`span_kind=workflow ${field} exists ${T} | by ${field} | count() as n, success_rate() as ok | sort n desc | limit 10`),
          (res) => charts.barList(res.rows.map((r) => ({
            label: r[field], value: r.n, sub: t('overview.okPct', {v: fmt.pct(r.ok)}),
            color: r.ok < 0.9 ? charts.ERR : r.ok < 0.98 ? '#f2a33a' : charts.OK,
          })), {onClick: (r) => explore(`${field}=${api.quote(r.label)}`)}));
        return pn.el;
      }));
    }).catch(() => {});
  }

  function schedule() {
    clearInterval(timer);
    if (refresh > 0) timer = setInterval(load, refresh * 1000);
  }
  load();
  schedule();
  return () => {
    clearInterval(timer);
    if (controller) controller.abort();
  };
}
