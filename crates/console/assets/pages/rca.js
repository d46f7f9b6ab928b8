// Root-cause analysis: "what changed" for a target (failures by default,
// or any filter such as duration>2s) in a window against the window before,
// from POST /api/v1/rca. Opened from an alert notification (its rca_url),
// from a query (?target=…), or by hand. Each finding links to its runs and
// to exemplar runs with the path that led to the failure.
//
// URL: /rca?target=<filter>&scope=<filter>&range=6h | &from=…&to=…
import {h, icon, replace} from '../dom.js';
import {t, MESSAGES} from '../i18n.js';
import * as api from '../api.js';
import * as fmt from '../format.js';
import * as tr from '../timerange.js';

// This page's texts, in both languages, joined to the console's.
Object.assign(MESSAGES.en, {
  'nav.rca': 'What changed',
  'rca.title': 'What changed', 'rca.target': 'Target', 'rca.scope': 'Scope',
  'rca.targetHint': 'What rose, e.g. status=error or duration>2s',
  'rca.scopeHint': 'Among which spans (default: every node)',
  'rca.run': 'Analyse', 'rca.running': 'Analysing…', 'rca.none': 'Nothing changed significantly.',
  'rca.findings': 'Findings', 'rca.window': 'Window', 'rca.baseline': 'Baseline',
  'rca.rate': 'rate', 'rca.lift': 'vs baseline', 'rca.excess': 'extra spans', 'rca.p': 'p-value',
  'rca.openRuns': 'Open these spans', 'rca.exemplars': 'Example runs', 'rca.path': 'Path',
  'rca.cooccur': 'Failures that happen together', 'rca.stats': '{q} queries ({r} from rollups), {ms} ms',
  'rca.since': 'since {t}', 'rca.between': '{a} → {b}',
});
Object.assign(MESSAGES.zh, {
  'nav.rca': '根因分析',
  'rca.title': '根因分析', 'rca.target': '目标', 'rca.scope': '范围',
  'rca.targetHint': '上升的是什么，例如 status=error 或 duration>2s',
  'rca.scopeHint': '在哪些 span 中（默认：所有节点）',
  'rca.run': '分析', 'rca.running': '分析中…', 'rca.none': '没有显著变化。',
  'rca.findings': '发现', 'rca.window': '分析窗口', 'rca.baseline': '基线',
  'rca.rate': '比例', 'rca.lift': '相对基线', 'rca.excess': '多出的 span', 'rca.p': 'p 值',
  'rca.openRuns': '查看这些 span', 'rca.exemplars': '示例运行', 'rca.path': '路径',
  'rca.cooccur': '同时发生的失败', 'rca.stats': '{q} 次查询（{r} 次来自汇总），{ms} 毫秒',
  'rca.since': '自 {t} 起', 'rca.between': '{a} → {b}',
});

function conds(f) {
  return h('div', {class: 'chips'}, f.conditions.map((c) =>
    h('span', {class: 'chip', dataset: {field: c.field}}, `${c.field.replace(/^tags\./, '')} = ${c.value}`)));
}

function when(f) {
  if (f.started_ns == null) return null;
  const a = fmt.time(f.started_ns);
  const text = f.ended_ns == null ? t('rca.since', {t: a}) : t('rca.between', {a, b: fmt.time(f.ended_ns)});
  return h('span', {class: 'muted small'}, icon('clock', 12), ' ', text);
}

function finding(f, i, report, range) {
  const q = `${f.filter} ${report.target}`;
  const runs = `/runs?${tr.toParams(range, new URLSearchParams({q, mode: 'spans'}))}`;
  return h('section', {class: 'panel', dataset: {testid: 'finding'}},
    h('header', {class: 'panel-head'}, h('h2', {}, `${i + 1}.`), conds(f), when(f)),
    h('div', {class: 'panel-body'},
      h('p', {class: 'rca-sentence'}, f.sentence),
      h('div', {class: 'stats'},
        stat(t('rca.window'), `${fmt.num(f.window.target)} / ${fmt.num(f.window.spans)} (${fmt.pct(f.window.rate)})`, 'bad'),
        stat(t('rca.baseline'), `${fmt.num(f.baseline.target)} / ${fmt.num(f.baseline.spans)} (${fmt.pct(f.baseline.rate)})`),
        stat(t('rca.lift'), `${f.lift >= 10 ? f.lift.toFixed(0) : f.lift.toFixed(1)}×`),
        stat(t('rca.excess'), fmt.num(Math.round(f.excess))),
        stat(t('rca.p'), f.p_value.toExponential(1))),
      h('div', {class: 'toolbar'}, h('a', {class: 'btn small', href: runs}, icon('runs', 14), ' ', t('rca.openRuns'))),
      f.exemplars.length ? h('div', {},
        h('h3', {class: 'small muted'}, t('rca.exemplars')),
        h('ul', {class: 'turns'}, f.exemplars.map((e) => h('li', {class: 'turn is-error'},
          h('a', {class: 'turn-card', href: `/runs/${encodeURIComponent(e.run_id)}`, dataset: {testid: 'exemplar'}},
            h('div', {class: 'turn-head'}, h('span', {class: 'cell-id'}, fmt.short(e.run_id, 12)),
              e.start_ns != null ? h('span', {class: 'turn-time'}, fmt.time(e.start_ns)) : null),
            e.error_message ? h('div', {class: 'turn-error'}, e.error_message) : null,
            e.path.length ? h('div', {class: 'muted small'}, `${t('rca.path')}: ${e.path.join(' → ')}`) : null))))) : null));
}

function stat(label, value, cls) {
  return h('div', {class: 'stat'}, h('div', {class: 'stat-label'}, label), h('div', {class: ['stat-value', cls]}, value));
}

function report(r, range) {
  return [
    h('section', {class: 'panel'}, h('div', {class: 'panel-body'},
      h('p', {class: 'rca-headline', dataset: {testid: 'headline'}}, r.headline))),
    r.findings.length
      ? r.findings.map((f, i) => finding(f, i, r, range))
      : h('div', {class: 'empty-state', dataset: {testid: 'no-findings'}}, h('p', {}, t('rca.none'))),
    r.co_occurrence.length ? h('section', {class: 'panel'},
      h('header', {class: 'panel-head'}, h('h2', {}, t('rca.cooccur'))),
      h('ul', {class: 'panel-body'}, r.co_occurrence.map((c) => h('li', {}, c.sentence)))) : null,
    h('div', {class: 'muted small'}, t('rca.stats', {q: r.stats.queries, r: r.stats.from_rollups, ms: r.stats.elapsed_ms})),
  ];
}

export function mount(ctx) {
  ctx.setTitle(t('rca.title'));
  let range = tr.fromParams(ctx.search, '1h');
  const target = h('input', {class: 'qb-input', name: 'target', value: ctx.search.get('target') || 'status=error',
    placeholder: t('rca.targetHint'), 'aria-label': t('rca.target')});
  const scope = h('input', {class: 'qb-input', name: 'scope', value: ctx.search.get('scope') || '',
    placeholder: t('rca.scopeHint'), 'aria-label': t('rca.scope')});
  const out = h('div', {class: 'results'});
  let controller = null;

  function run() {
    const params = tr.toParams(range, new URLSearchParams());
    params.set('target', target.value);
    if (scope.value.trim()) params.set('scope', scope.value.trim());
    history.replaceState({}, '', `/rca?${params}`);
    const [fromNs, toNs] = tr.bounds(range);
    const body = {
      target: target.value.trim() || 'status=error',
      from: fmt.rfc3339(fromNs),
      to: fmt.rfc3339(toNs),
    };
    if (scope.value.trim()) body.scope = scope.value.trim();
    if (controller) controller.abort();
    controller = new AbortController();
    replace(out, h('div', {class: 'panel'}, h('div', {class: 'skeleton tall'}), h('p', {class: 'muted'}, t('rca.running'))));
    api.post('/api/v1/rca', body, {signal: controller.signal})
      .then((r) => replace(out, ...report(r, range)))
      .catch((e) => {
        if (e.name === 'AbortError') return;
        replace(out, h('div', {class: 'error-box', dataset: {testid: 'rca-error'}}, h('div', {class: 'error-title'}, e.message)));
      });
  }

  const actions = () => replace(ctx.actions, tr.picker(range, (r) => { range = r; actions(); run(); }));
  actions();
  replace(ctx.el,
    h('form', {class: 'toolbar rca-form', onsubmit: (e) => { e.preventDefault(); run(); }},
      h('label', {class: 'qb-field'}, h('span', {class: 'small muted'}, t('rca.target')), target),
      h('label', {class: 'qb-field'}, h('span', {class: 'small muted'}, t('rca.scope')), scope),
      h('button', {class: 'btn', type: 'submit'}, icon('search', 14), ' ', t('rca.run'))),
    out);
  run();
  return () => { if (controller) controller.abort(); };
}
