// Alerts: the active and just-resolved alerts, every rule with its state
// (create, edit with a preview of past firings, delete: ./alert_rule.js),
// silences (create with at least one positive matcher, expire) and the
// notification channels (send a test notice).
// Reads /api/v1/alerts, /api/v1/alerts/rules, /api/v1/alerts/silences and
// /api/v1/alerts/channels;
// fields it does not know are ignored, and a key without the scope reads
// "this key cannot …" where the refused part would be.
import {h, icon, replace} from '../dom.js';
import {t} from '../i18n.js';
import * as api from '../api.js';
import * as fmt from '../format.js';
import {section, failure, empty} from '../widgets.js';
import {ruleEditor, formatMetric} from './alert_rule.js';

const PHASES = ['firing', 'pending', 'resolved'];
const DURATIONS = [['1h', 3600e3], ['2h', 7200e3], ['4h', 4 * 3600e3], ['12h', 12 * 3600e3], ['1d', 86400e3], ['7d', 7 * 86400e3]];

const msNs = (ms) => (ms == null ? null : ms * 1e6);
const phaseBadge = (p) => h('span', {class: ['badge', `ph-${p}`], dataset: {phase: p}}, t(`alerts.phase.${p}`));

// The labels a silence matches an alert on: alertname, severity, group.
function alertLabels(a, rules) {
  const rule = rules.find((r) => r.name === a.rule);
  return {alertname: a.rule, ...(rule && rule.severity ? {severity: rule.severity} : {}), ...(a.group || {})};
}

function groupText(group) {
  const entries = Object.entries(group || {});
  return entries.length ? entries.map(([k, v]) => h('span', {class: 'chip'}, `${k}=${v}`)) : h('span', {class: 'muted'}, '—');
}

function condition(r) {
  if (r.type === 'event') return t('alerts.eventCondition', {n: r.consecutive ?? 3, within: r.within || '10m'});
  const thr = r.threshold == null ? '?' : String(r.threshold);
  return `${r.metric || '?'} ${r.op || '>'} ${thr} · ${t('alerts.over', {w: r.window || '5m'})}${r.for && r.for !== '0s' ? ` · ${t('alerts.for', {d: r.for})}` : ''}`;
}

const formatValue = formatMetric;

export function mount(ctx) {
  ctx.setTitle(t('alerts.title'));
  const controller = new AbortController();
  const {signal} = controller;
  const boxes = {alerts: h('div', {}, h('div', {class: 'skeleton'})), rules: h('div', {}, h('div', {class: 'skeleton'})), silences: h('div', {}),
    channels: h('div', {}), history: h('div', {})};
  const form = h('div', {});
  const editor = h('div', {});
  let data = {alerts: [], rules: [], silences: [], channels: [], labels: []};
  let filter = ctx.search.get('phase') || 'all';

  const filterBar = h('div', {class: 'segmented', role: 'group', 'aria-label': t('alerts.filter')});
  const drawFilter = () => replace(filterBar, ['all', ...PHASES].map((p) => h('button', {
    class: ['seg', filter === p && 'active'], 'aria-pressed': filter === p ? 'true' : 'false', dataset: {phase: p},
    onclick: () => { filter = p; drawFilter(); drawAlerts(); },
  }, p === 'all' ? t('alerts.all') : t(`alerts.phase.${p}`))));

  replace(ctx.actions, h('button', {class: 'btn icon-only', title: t('refresh.now'), 'aria-label': t('refresh.now'), onclick: () => load()}, icon('refresh')));
  replace(ctx.el,
    section('alerts', t('alerts.active'), boxes.alerts, {actions: filterBar}),
    section('rules', t('alerts.rules'), [boxes.rules, editor], {actions: h('button', {class: 'btn small', dataset: {action: 'new-rule'},
      onclick: () => editRule(null)}, icon('plus', 12), ' ', t('rule.new'))}),
    section('silences', t('alerts.silences'), [boxes.silences, form]),
    section('history', t('history.title'), boxes.history, {sub: t('history.sub')}),
    section('channels', t('channels.title'), boxes.channels, {sub: t('channels.sub')}));
  drawFilter();

  function drawAlerts() {
    const rank = (a) => PHASES.indexOf(a.phase);
    const shown = data.alerts.filter((a) => filter === 'all' || a.phase === filter)
      .sort((a, b) => rank(a) - rank(b) || (b.active_since_ms || 0) - (a.active_since_ms || 0));
    if (!shown.length) { replace(boxes.alerts, empty(t(filter === 'all' ? 'alerts.noAlerts' : 'alerts.noneInPhase'))); return; }
    const metricOf = (a) => (data.rules.find((r) => r.name === a.rule) || {}).metric;
    replace(boxes.alerts, h('div', {class: 'table-box'}, h('table', {class: 'table', dataset: {testid: 'alerts-table'}},
      h('thead', {}, h('tr', {}, ['alerts.state', 'alerts.rule', 'alerts.group', 'alerts.value', 'alerts.since', 'alerts.fired', 'alerts.resolved', '']
        .map((k) => h('th', {}, k ? t(k) : h('span', {class: 'sr-only'}, t('alerts.actions')))))),
      h('tbody', {}, shown.map((a) => h('tr', {dataset: {rule: a.rule, phase: a.phase}},
        h('td', {}, phaseBadge(a.phase)),
        h('td', {class: 'mono'}, a.rule),
        h('td', {}, groupText(a.group)),
        h('td', {class: 'num'}, formatValue(metricOf(a), a.value)),
        h('td', {}, a.active_since_ms ? fmt.ago(msNs(a.active_since_ms)) : '—'),
        h('td', {}, a.fired_at_ms ? fmt.time(msNs(a.fired_at_ms), {seconds: false}) : '—'),
        h('td', {}, a.resolved_at_ms ? fmt.time(msNs(a.resolved_at_ms), {seconds: false}) : '—'),
        h('td', {}, a.phase !== 'resolved' ? h('button', {class: 'btn small', dataset: {action: 'silence'},
          onclick: () => silenceForm(alertLabels(a, data.rules))}, t('alerts.silence')) : null)))))));
  }

  function drawRules() {
    if (!data.rules.length) { replace(boxes.rules, empty(t('alerts.noRules'), t('alerts.rulesHint'))); return; }
    const state = (r) => {
      const mine = data.alerts.filter((a) => a.rule === r.name);
      if (mine.some((a) => a.phase === 'firing')) return 'firing';
      if (mine.some((a) => a.phase === 'pending')) return 'pending';
      return 'ok';
    };
    replace(boxes.rules, h('div', {class: 'table-box'}, h('table', {class: 'table', dataset: {testid: 'rules-table'}},
      h('thead', {}, h('tr', {}, ['alerts.state', 'alerts.rule', 'alerts.condition', 'alerts.filters', 'alerts.groupBy', 'alerts.severity', 'alerts.notify', 'alerts.source', '']
        .map((k) => h('th', {}, k ? t(k) : h('span', {class: 'sr-only'}, t('alerts.actions')))))),
      h('tbody', {}, data.rules.map((r) => {
        const st = state(r);
        const firing = data.alerts.filter((a) => a.rule === r.name && a.phase === 'firing').length;
        return h('tr', {dataset: {rule: r.name, state: st}},
          h('td', {}, st === 'ok' ? h('span', {class: 'badge st-ok'}, t('alerts.ok')) : phaseBadge(st), firing > 1 ? h('span', {class: 'muted small'}, ` ×${firing}`) : null),
          h('td', {}, h('div', {class: 'mono'}, r.name), r.summary ? h('div', {class: 'muted small'}, r.summary) : null),
          h('td', {class: 'small'}, condition(r)),
          h('td', {}, groupText(r.filters)),
          h('td', {class: 'small mono'}, (r.group_by || []).join(', ') || '—'),
          h('td', {}, r.severity || '—'),
          h('td', {class: 'small'}, [...(r.notify || []), ...(r.actions || []).map((x) => `⚙ ${x}`)].join(', ') || '—'),
          h('td', {class: 'small'}, t(`alerts.src.${r.source === 'config' ? 'config' : 'api'}`)),
          h('td', {class: 'row-actions'}, r.source === 'api' ? [
            h('button', {class: 'btn small', dataset: {action: 'edit-rule'}, onclick: () => editRule(r)}, t('rule.editShort')),
            h('button', {class: 'btn small', dataset: {action: 'delete-rule'}, onclick: (e) => deleteRule(r.name, e.currentTarget)}, t('alerts.delete')),
          ] : h('span', {class: 'muted small', title: t('rule.configOnly')}, '—')));
      })))));
  }

  function drawSilences() {
    const now = Date.now();
    const list = data.silences.slice().sort((a, b) => Date.parse(a.ends_at) - Date.parse(b.ends_at));
    replace(boxes.silences, list.length ? h('div', {class: 'table-box'}, h('table', {class: 'table', dataset: {testid: 'silences-table'}},
      h('thead', {}, h('tr', {}, ['alerts.state', 'alerts.matchers', 'alerts.ends', 'alerts.createdBy', 'alerts.comment', '']
        .map((k) => h('th', {}, k ? t(k) : h('span', {class: 'sr-only'}, t('alerts.actions')))))),
      h('tbody', {}, list.map((s) => {
        const pending = s.starts_at && Date.parse(s.starts_at) > now;
        return h('tr', {dataset: {silence: s.id}},
          h('td', {}, h('span', {class: ['badge', pending ? 'ph-pending' : 'st-ok']}, t(pending ? 'alerts.scheduled' : 'alerts.activeSilence'))),
          h('td', {}, groupText(s.matchers)),
          h('td', {}, fmt.time(Date.parse(s.ends_at) * 1e6, {seconds: false})),
          h('td', {}, s.created_by || '—'),
          h('td', {class: 'small'}, s.comment || '—'),
          h('td', {}, h('button', {class: 'btn small', dataset: {action: 'expire'}, onclick: (e) => expire(s.id, e.currentTarget)}, t('alerts.expire'))));
      })))) : empty(t('alerts.noSilences')));
  }

  // The form for a new silence, prefilled from an alert's labels or empty.
  function silenceForm(labels = null) {
    const rows = h('div', {class: 'matchers'});
    const names = new Set(['alertname', 'severity']);
    data.rules.forEach((r) => (r.group_by || []).forEach((g) => names.add(g)));
    const listId = 'silence-label-names';
    const addRow = (k = '', v = '') => {
      const row = h('div', {class: 'matcher-row'},
        h('input', {class: 'input', 'aria-label': t('alerts.label'), placeholder: t('alerts.label'), list: listId, value: k, dataset: {field: 'name'}}),
        h('span', {class: 'muted'}, '='),
        h('input', {class: 'input', 'aria-label': t('alerts.matchValue'), placeholder: t('alerts.matchValue'), value: v, dataset: {field: 'value'}}),
        h('button', {type: 'button', class: 'btn small icon-only', title: t('alerts.removeMatcher'), 'aria-label': t('alerts.removeMatcher'),
          onclick: () => row.remove()}, icon('x', 12)));
      rows.appendChild(row);
    };
    Object.entries(labels || {alertname: ''}).forEach(([k, v]) => addRow(k, v));
    const dur = h('select', {class: 'input', 'aria-label': t('alerts.duration'), dataset: {field: 'duration'}},
      DURATIONS.map(([label, ms]) => h('option', {value: String(ms), selected: label === '2h'}, t('alerts.forDuration', {d: label}))));
    const comment = h('input', {class: 'input wide-input', placeholder: t('alerts.comment'), 'aria-label': t('alerts.comment'), dataset: {field: 'comment'}});
    const by = h('input', {class: 'input', placeholder: t('alerts.createdBy'), 'aria-label': t('alerts.createdBy'), dataset: {field: 'created_by'}});
    const msg = h('div', {class: 'form-msg', role: 'status'});
    const submit = async (e) => {
      e.preventDefault();
      const matchers = {};
      for (const row of rows.children) {
        const k = row.querySelector('[data-field=name]').value.trim();
        const v = row.querySelector('[data-field=value]').value.trim();
        if (k) matchers[k] = v;
      }
      // A silence of negative matchers alone would mute almost everything.
      if (!Object.values(matchers).some((v) => v && !v.startsWith('!'))) {
        replace(msg, h('span', {class: 'bad-text'}, t('alerts.needPositive')));
        return;
      }
      const body = {matchers, ends_at: new Date(Date.now() + Number(dur.value)).toISOString(), comment: comment.value.trim(), created_by: by.value.trim()};
      try {
        await api.post('/api/v1/alerts/silences', body);
        replace(form);
        await load();
      } catch (err) {
        replace(msg, failure(err, t('alerts.canCreateSilence')));
      }
    };
    replace(form, h('form', {class: 'silence-form', dataset: {testid: 'silence-form'}, onsubmit: submit},
      h('h3', {}, t('alerts.newSilence')),
      h('datalist', {id: listId}, [...names].map((n) => h('option', {value: n}))),
      rows,
      h('div', {class: 'form-row'},
        h('button', {type: 'button', class: 'btn small', onclick: () => addRow()}, t('alerts.addMatcher')), dur, by),
      h('div', {class: 'form-row'}, comment),
      h('div', {class: 'form-row'},
        h('button', {type: 'submit', class: 'btn primary'}, t('alerts.createSilence')),
        h('button', {type: 'button', class: 'btn', onclick: () => replace(form, newButton())}, t('alerts.cancel'))),
      msg));
    const first = form.querySelector('[data-field=value]');
    if (first) first.focus();
  }
  const newButton = () => h('button', {class: 'btn', dataset: {action: 'new-silence'}, onclick: () => silenceForm()}, t('alerts.newSilence'));

  async function expire(id, btn) {
    btn.disabled = true;
    try {
      await api.del(`/api/v1/alerts/silences/${encodeURIComponent(id)}`);
      await load();
    } catch (e) {
      btn.disabled = false;
      btn.after(failure(e, t('alerts.canExpire')));
    }
  }

  async function deleteRule(name, btn) {
    if (!window.confirm(t('alerts.confirmDelete', {name}))) return;
    btn.disabled = true;
    try {
      await api.del(`/api/v1/alerts/rules/${encodeURIComponent(name)}`);
      await load();
    } catch (e) {
      btn.disabled = false;
      btn.after(failure(e, t('alerts.canDeleteRule')));
    }
  }

  function editRule(rule) {
    replace(editor, ruleEditor({rule, channels: data.channels, labels: data.labels, onDone: (saved) => {
      replace(editor);
      if (saved) load().catch(() => {});
    }}));
    editor.scrollIntoView({block: 'nearest'});
    const first = editor.querySelector(rule ? '[data-field=threshold]' : '[data-field=name]');
    if (first) first.focus();
  }

  // Notices sent (firing, reminders, resolved), newest first, with what
  // each channel and action did: the alert history and the action audit.
  function drawHistory(list) {
    if (!list.length) { replace(boxes.history, empty(t('history.none'))); return; }
    const stateBadge = (e) => {
      if (e.state === 'resolved') return phaseBadge('resolved');
      return h('span', {class: ['badge', 'ph-firing'], dataset: {phase: 'firing'}}, e.reminder ? t('history.reminder') : t('alerts.phase.firing'));
    };
    const metricOf = (e) => (data.rules.find((r) => r.name === e.rule) || {}).metric;
    replace(boxes.history, h('div', {class: 'table-box'}, h('table', {class: 'table', dataset: {testid: 'history-table'}},
      h('thead', {}, h('tr', {}, ['history.at', 'alerts.rule', 'alerts.group', 'alerts.state', 'alerts.value', 'history.deliveries']
        .map((k) => h('th', {}, t(k))))),
      h('tbody', {}, list.map((e) => h('tr', {dataset: {rule: e.rule, state: e.state}},
        h('td', {}, fmt.time(msNs(e.at_ms), {seconds: false})),
        h('td', {class: 'mono'}, e.rule),
        h('td', {}, groupText(e.group)),
        h('td', {}, stateBadge(e), e.silenced ? h('span', {class: 'muted small'}, ` ${t('history.silenced')}`) : null),
        h('td', {class: 'num'}, formatValue(metricOf(e), e.value)),
        h('td', {}, e.deliveries.length ? h('div', {class: 'chips'}, e.deliveries.map((d) => h('span', {
          class: ['chip', /^failed|^error|^timeout/.test(d.result) && 'bad-text'], title: d.result, dataset: {target: d.target}},
        `${d.kind === 'action' ? '⚙ ' : ''}${d.target}: ${d.result.length > 60 ? `${d.result.slice(0, 60)}…` : d.result}`))) : h('span', {class: 'muted'}, '—'))))))));
  }

  function drawChannels() {
    if (!data.channels.length) { replace(boxes.channels, empty(t('channels.none'), t('channels.hint'))); return; }
    replace(boxes.channels, h('div', {class: 'table-box'}, h('table', {class: 'table', dataset: {testid: 'channels-table'}},
      h('thead', {}, h('tr', {}, h('th', {}, t('channels.name')), h('th', {}, t('channels.type')), h('th', {}, h('span', {class: 'sr-only'}, t('alerts.actions'))))),
      h('tbody', {}, data.channels.map((c) => {
        const result = h('span', {class: 'test-result', role: 'status'});
        return h('tr', {dataset: {channel: c.name}},
          h('td', {class: 'mono'}, c.name), h('td', {}, c.type),
          h('td', {}, h('button', {class: 'btn small', dataset: {action: 'test-channel'}, onclick: async (e) => {
            const btn = e.currentTarget;
            btn.disabled = true;
            replace(result, h('span', {class: 'muted'}, t('channels.sending')));
            try {
              const r = await api.post(`/api/v1/alerts/channels/${encodeURIComponent(c.name)}/test`, {});
              replace(result, h('span', {class: 'good-text', dataset: {result: 'sent'}}, t('channels.sent', {ms: fmt.num(r.elapsed_ms)})));
            } catch (err) {
              replace(result, err.status === 403 ? failure(err, t('channels.canTest'))
                : h('span', {class: 'bad-text', dataset: {result: 'failed'}}, err.message));
            } finally {
              btn.disabled = false;
            }
          }}, t('channels.test')), result));
      })))));
  }

  async function load() {
    const get = (path, key) => api.get(path, {signal}).then((d) => (d && Array.isArray(d[key]) ? d[key] : []));
    if (!data.labels.length) {
      api.get('/api/v1/settings', {signal}).then((st) => { data.labels = (st && st.metrics && st.metrics.labels) || []; }).catch(() => {});
    }
    api.get('/api/v1/alerts/history?limit=100', {signal}).then((d) => drawHistory(d.history || []))
      .catch((e) => { if (e.name !== 'AbortError' && e.status !== 404) replace(boxes.history, failure(e, t('history.canRead'))); });
    get('/api/v1/alerts/channels', 'channels').then((c) => { data.channels = c; drawChannels(); })
      .catch((e) => { if (e.name !== 'AbortError' && e.status !== 404) replace(boxes.channels, failure(e, t('channels.canRead'))); });
    const [alerts, rules, silences] = await Promise.allSettled([
      get('/api/v1/alerts', 'alerts'), get('/api/v1/alerts/rules', 'rules'), get('/api/v1/alerts/silences', 'silences')]);
    if (signal.aborted) return;
    const off = [alerts, rules, silences].find((r) => r.status === 'rejected' && r.reason && r.reason.status === 404);
    if (off) {
      replace(ctx.el, empty(t('alerts.disabled'), t('alerts.disabledHint')));
      ctx.el.firstChild.dataset.testid = 'alerts-disabled';
      return;
    }
    data = {
      ...data,
      alerts: alerts.status === 'fulfilled' ? alerts.value : [],
      rules: rules.status === 'fulfilled' ? rules.value : [],
      silences: silences.status === 'fulfilled' ? silences.value : [],
    };
    if (alerts.status === 'fulfilled') drawAlerts(); else replace(boxes.alerts, failure(alerts.reason, t('alerts.canReadAlerts')));
    if (rules.status === 'fulfilled') drawRules(); else replace(boxes.rules, failure(rules.reason, t('alerts.canReadRules')));
    if (silences.status === 'fulfilled') drawSilences(); else replace(boxes.silences, failure(silences.reason, t('alerts.canReadSilences')));
    if (!form.firstChild) replace(form, newButton());
  }
  load().catch((e) => { if (e.name !== 'AbortError') replace(boxes.alerts, failure(e, t('alerts.canReadAlerts'))); });
  const timer = setInterval(() => { if (!form.querySelector('form') && !editor.firstChild) load().catch(() => {}); }, 30000);
  return () => { clearInterval(timer); controller.abort(); };
}
