// The alert rule editor: create or edit a rule of this project (POST
// /api/v1/alerts/rules replaces a rule of the same name), with a preview of
// what it would have fired over the last hours of stored data (POST
// /api/v1/alerts/rules/preview: the server replays the stored spans through
// the real evaluator). The server validates; its 400 names the problem and
// is shown under the form.
import {h, icon, replace} from '../dom.js';
import {t} from '../i18n.js';
import * as api from '../api.js';
import * as fmt from '../format.js';
import * as charts from '../charts.js';
import {failure} from '../widgets.js';

const METRICS = ['failure_rate', 'success_rate', 'p95_latency', 'avg_latency', 'count', 'tokens_sum', 'cost_sum'];
const OPS = ['>', '>=', '<', '<='];
const FIELDS = ['span_kind', 'app_id', 'workflow_id', 'node_type', 'tool_name', 'model_name', 'status', 'error_class'];
const HOURS = [1, 6, 24, 72, 168];
// Fields the form edits; the rule's others (actions, repeat_interval, …) are kept as they are.
const EDITED = ['name', 'type', 'metric', 'op', 'threshold', 'window', 'for', 'consecutive', 'within', 'filters', 'group_by',
  'severity', 'summary', 'notify', 'no_data'];

// A metric value as the rule's unit reads.
export function formatMetric(metric, v) {
  if (v == null) return '—';
  if (/rate/.test(metric || '')) return fmt.pct(v);
  if (/latency/.test(metric || '')) return `${Number(v).toFixed(3)} s`;
  if (metric === 'cost_sum') return fmt.cost(v);
  return fmt.num(Math.round(v * 1000) / 1000);
}

const input = (field, value, attrs = {}) => h('input', {class: 'input', dataset: {field}, value: value ?? '', 'aria-label': t(`rule.${field}`), ...attrs});
const select = (field, options, value) => h('select', {class: 'input', dataset: {field}, 'aria-label': t(`rule.${field}`)},
  options.map(([v, label]) => h('option', {value: v, selected: v === value}, label)));
const labelled = (key, control, hint) => h('label', {class: 'field'}, h('span', {class: 'field-label'}, t(key)), control,
  hint ? h('span', {class: 'muted small'}, hint) : null);

// rule: the rule to edit (null: a new one). channels: [{name, type}].
// labels: the rollup label tags. onDone(saved): closes the editor.
export function ruleEditor({rule = null, channels = [], labels = [], onDone}) {
  const r = rule || {type: 'threshold', metric: 'failure_rate', op: '>', threshold: '5%', window: '5m', severity: 'warning'};
  const kind = select('type', [['threshold', t('rule.type.threshold')], ['event', t('rule.type.event')]], r.type || 'threshold');
  const els = {
    name: input('name', r.name, {placeholder: 'inventory-failing', readonly: !!rule, required: true}),
    metric: select('metric', METRICS.map((m) => [m, t(`rule.metric.${m}`)]), r.metric || 'failure_rate'),
    op: select('op', OPS.map((o) => [o, o]), r.op || '>'),
    threshold: input('threshold', r.threshold, {placeholder: '5% · 0.05 · 2s · 100'}),
    window: input('window', r.window || '5m', {placeholder: '5m'}),
    for: input('for', r.for && r.for !== '0s' ? r.for : '', {placeholder: '0s'}),
    consecutive: input('consecutive', r.consecutive ?? 3, {type: 'number', min: 1}),
    within: input('within', r.within || '10m', {placeholder: '10m'}),
    group_by: input('group_by', (r.group_by || []).join(', '), {placeholder: 'tool_name, tags.category', list: 'rule-fields'}),
    severity: select('severity', ['info', 'warning', 'critical'].map((s) => [s, s]), r.severity || 'warning'),
    summary: input('summary', r.summary, {class: 'input wide-input'}),
    no_data: select('no_data', ['ok', 'alerting', 'keep'].map((n) => [n, t(`rule.noData.${n}`)]), r.no_data || 'ok'),
  };
  const filterRows = h('div', {class: 'matchers', dataset: {testid: 'rule-filters'}});
  const addFilter = (k = '', v = '') => {
    const row = h('div', {class: 'matcher-row'},
      h('input', {class: 'input', list: 'rule-fields', placeholder: t('rule.field'), 'aria-label': t('rule.field'), value: k, dataset: {field: 'filter-name'}}),
      h('span', {class: 'muted'}, '='),
      h('input', {class: 'input', placeholder: t('alerts.matchValue'), 'aria-label': t('alerts.matchValue'), value: v, dataset: {field: 'filter-value'}}),
      h('button', {type: 'button', class: 'btn small icon-only', title: t('alerts.removeMatcher'), 'aria-label': t('alerts.removeMatcher'),
        onclick: () => row.remove()}, icon('x', 12)));
    filterRows.appendChild(row);
  };
  Object.entries(r.filters || {}).forEach(([k, v]) => addFilter(k, v));
  if (!filterRows.children.length) addFilter();
  const notify = h('div', {class: 'chips', dataset: {testid: 'rule-notify'}}, channels.length
    ? channels.map((c) => h('label', {class: 'chip check'}, h('input', {type: 'checkbox', value: c.name, checked: (r.notify || []).includes(c.name),
      dataset: {channel: c.name}}), ` ${c.name} `, h('span', {class: 'muted small'}, c.type)))
    : h('span', {class: 'muted small'}, t('rule.noChannels')));

  const thresholdPart = h('div', {class: 'form-grid'},
    labelled('rule.metric', els.metric), labelled('rule.op', els.op), labelled('rule.threshold', els.threshold, t('rule.thresholdHint')),
    labelled('rule.window', els.window), labelled('rule.for', els.for), labelled('rule.no_data', els.no_data));
  const eventPart = h('div', {class: 'form-grid'},
    labelled('rule.consecutive', els.consecutive), labelled('rule.within', els.within));
  const showKind = () => { thresholdPart.hidden = kind.value !== 'threshold'; eventPart.hidden = kind.value !== 'event'; };
  kind.addEventListener('change', showKind);
  showKind();

  // The rule as the API takes it: the original's other fields, the form's.
  function collect() {
    const out = {...r};
    delete out.source;
    for (const k of EDITED) delete out[k];
    out.name = els.name.value.trim();
    out.type = kind.value;
    if (kind.value === 'threshold') {
      out.metric = els.metric.value;
      out.op = els.op.value;
      const thr = els.threshold.value.trim();
      if (thr) out.threshold = /^-?\d+(\.\d+)?([eE]-?\d+)?$/.test(thr) ? Number(thr) : thr;
      out.window = els.window.value.trim() || '5m';
      if (els.for.value.trim()) out.for = els.for.value.trim();
      out.no_data = els.no_data.value;
    } else {
      out.consecutive = Number(els.consecutive.value) || 3;
      out.within = els.within.value.trim() || '10m';
    }
    out.filters = {};
    for (const row of filterRows.children) {
      const k = row.querySelector('[data-field=filter-name]').value.trim();
      const v = row.querySelector('[data-field=filter-value]').value.trim();
      if (k) out.filters[k] = v;
    }
    out.group_by = els.group_by.value.split(',').map((x) => x.trim()).filter(Boolean);
    out.severity = els.severity.value;
    if (els.summary.value.trim()) out.summary = els.summary.value.trim();
    out.notify = [...notify.querySelectorAll('input:checked')].map((c) => c.value);
    return out;
  }

  const msg = h('div', {class: 'form-msg', role: 'status', dataset: {testid: 'rule-msg'}});
  const previewBox = h('div', {class: 'rule-preview', dataset: {testid: 'rule-preview'}});
  const hours = h('select', {class: 'input', dataset: {field: 'hours'}, 'aria-label': t('rule.previewHours')},
    HOURS.map((n) => h('option', {value: String(n), selected: n === 24}, t('rule.lastHours', {n}))));

  async function preview() {
    replace(msg);
    replace(previewBox, h('div', {class: 'skeleton'}));
    const body = collect();
    try {
      const res = await api.post('/api/v1/alerts/rules/preview', {rule: body, hours: Number(hours.value)});
      replace(previewBox, drawPreview(res, body));
    } catch (e) {
      replace(previewBox);
      replace(msg, e.status === 403 ? failure(e, t('rule.canPreview')) : h('span', {class: 'bad-text', dataset: {testid: 'rule-error'}}, e.message));
    }
  }

  async function save(e) {
    e.preventDefault();
    replace(msg);
    const body = collect();
    if (!body.name) { replace(msg, h('span', {class: 'bad-text', dataset: {testid: 'rule-error'}}, t('rule.needName'))); return; }
    try {
      await api.post('/api/v1/alerts/rules', body);
      onDone(true);
    } catch (err) {
      replace(msg, err.status === 403 ? failure(err, t('rule.canSave')) : h('span', {class: 'bad-text', dataset: {testid: 'rule-error'}}, err.message));
    }
  }

  return h('form', {class: 'rule-form', dataset: {testid: 'rule-form'}, onsubmit: save},
    h('h3', {}, rule ? t('rule.edit', {name: rule.name}) : t('rule.new')),
    h('datalist', {id: 'rule-fields'}, [...FIELDS, ...labels.map((l) => `tags.${l}`)].map((f) => h('option', {value: f}))),
    h('div', {class: 'form-grid'}, labelled('rule.name', els.name), labelled('rule.type', kind), labelled('rule.severity', els.severity)),
    thresholdPart, eventPart,
    h('div', {class: 'field'}, h('span', {class: 'field-label'}, t('rule.filters')), filterRows,
      h('div', {}, h('button', {type: 'button', class: 'btn small', onclick: () => addFilter()}, t('rule.addFilter')))),
    h('div', {class: 'form-grid'}, labelled('rule.group_by', els.group_by), labelled('rule.summary', els.summary)),
    h('div', {class: 'field'}, h('span', {class: 'field-label'}, t('rule.notify')), notify),
    h('div', {class: 'form-row'},
      h('button', {type: 'button', class: 'btn', dataset: {action: 'preview'}, onclick: preview}, icon('search', 14), ' ', t('rule.preview')), hours,
      h('span', {class: 'spacer'}),
      h('button', {type: 'submit', class: 'btn primary'}, t('rule.save')),
      h('button', {type: 'button', class: 'btn', onclick: () => onDone(false)}, t('alerts.cancel'))),
    msg, previewBox);
}

function drawPreview(res, rule) {
  const p = res.preview;
  const metric = rule.type === 'event' ? 'count' : rule.metric;
  const headline = p.fired === 0 ? t('rule.wouldNotFire', {h: res.hours}) : t('rule.wouldFire', {n: fmt.num(p.fired), h: res.hours});
  const facts = h('div', {class: 'muted small'}, t('rule.previewFacts', {
    resolved: fmt.num(p.resolved), firing: fmt.num(p.firing_at_end), spans: fmt.num(p.spans),
    evals: fmt.num(p.evaluations), step: fmt.duration(p.step_ms * 1e6), ms: fmt.num(res.elapsed_ms)}));
  let chart = null;
  if (p.series && p.series.length > 1) {
    const step = (p.series[1][0] - p.series[0][0]) * 1e6;
    const from = p.series[0][0] * 1e6;
    const values = new Map();
    const thr = new Map();
    const start = Math.floor(from / step) * step;
    p.series.forEach(([, v], i) => { values.set(start + i * step, v); thr.set(start + i * step, p.threshold); });
    chart = charts.timeSeries({
      series: [{name: t('rule.value'), color: charts.PALETTE[0], values}, {name: t('rule.threshold'), color: charts.ERR, values: thr}],
      from: start, to: start + p.series.length * step, step, height: 160, format: (v) => formatMetric(metric, v),
    });
  }
  const list = p.transitions.length ? h('table', {class: 'table compact', dataset: {testid: 'preview-transitions'}},
    h('thead', {}, h('tr', {}, h('th', {}, t('alerts.state')), h('th', {}, t('rule.at')), h('th', {}, t('alerts.group')), h('th', {class: 'num'}, t('alerts.value')))),
    h('tbody', {}, p.transitions.slice(0, 20).map((x) => h('tr', {dataset: {state: x.state}},
      h('td', {}, h('span', {class: ['badge', x.state === 'firing' ? 'ph-firing' : 'ph-resolved']}, t(`alerts.phase.${x.state}`))),
      h('td', {}, fmt.time(x.at_ms * 1e6, {seconds: false})),
      h('td', {class: 'mono small'}, x.group),
      h('td', {class: 'num'}, formatMetric(metric, x.value)))))) : null;
  return h('div', {dataset: {fired: String(p.fired)}},
    h('p', {class: ['preview-headline', p.fired ? 'bad-text' : 'good-text'], dataset: {testid: 'preview-headline'}}, headline), facts, chart, list);
}
