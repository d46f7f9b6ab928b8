// Cost budgets on the Users & conversations page (GET /api/v1/budgets):
// this period's spend against each limit, per group for `per` budgets, and
// the thresholds notified. Budgets of loupe.toml are read-only; a form adds,
// changes (PUT /api/v1/budgets/{name}) and removes (DELETE) the console's
// own. The server validates: its 4xx is shown as it says it.
import {h, icon, replace} from '../dom.js';
import {t, MESSAGES} from '../i18n.js';
import * as api from '../api.js';
import * as fmt from '../format.js';
import {section, failure, empty} from '../widgets.js';

Object.assign(MESSAGES.en, {
  'bud.title': 'Cost budgets', 'bud.sub': 'this period, from {start}', 'bud.budget': 'Budget', 'bud.period': 'Period',
  'bud.limit': 'Limit', 'bud.spent': 'Spent', 'bud.notified': 'Notified', 'bud.per': 'per {per}', 'bud.moreGroups': '… {n} groups in all',
  'bud.otherCurrencies': 'Not counted (no rate in [costs]): {list}',
  'bud.period.day': 'day', 'bud.period.week': 'week', 'bud.period.month': 'month',
  'bud.new': 'New budget', 'bud.none': 'No cost budgets yet.',
  'bud.noneHint': 'A budget notifies your alert channels when this period’s spend reaches its thresholds (80 % and 100 % by default).',
  'bud.name': 'Name', 'bud.amount': 'Amount', 'bud.currency': 'Currency', 'bud.filter': 'Only spans with',
  'bud.filterHint': 'app_name=Shop, tags.tier=vip', 'bud.perLabel': 'One budget per', 'bud.perNone': '(everything together)',
  'bud.user': 'user', 'bud.app': 'app', 'bud.thresholds': 'Notify at (% of the amount)', 'bud.notify': 'Channels',
  'bud.noChannels': 'No alert channels: add [[alerts.channels]] to loupe.toml to be notified.',
  'bud.save': 'Save budget', 'bud.cancel': 'Cancel', 'bud.edit': 'Edit', 'bud.delete': 'Remove', 'bud.src.loupe.toml': 'loupe.toml', 'bud.src.console': 'console',
  'bud.source': 'Set in', 'bud.saved': 'Budget {name} saved.', 'bud.deleted': 'Budget {name} removed.',
  'bud.confirmDelete': 'Remove the budget {name}? What it notified this period is forgotten.',
  'bud.badFilter': 'Filters are key=value pairs separated by commas: {text}',
  'bud.needName': 'A budget needs a name.',
  'bud.badThresholds': 'Thresholds are percentages separated by commas, e.g. 80, 100: {text}',
});
Object.assign(MESSAGES.zh, {
  'bud.title': '成本预算', 'bud.sub': '本周期，自 {start} 起', 'bud.budget': '预算', 'bud.period': '周期',
  'bud.limit': '额度', 'bud.spent': '已用', 'bud.notified': '已通知', 'bud.per': '按 {per}', 'bud.moreGroups': '… 共 {n} 组',
  'bud.otherCurrencies': '未计入（[costs] 中没有汇率）：{list}',
  'bud.period.day': '日', 'bud.period.week': '周', 'bud.period.month': '月',
  'bud.new': '新建预算', 'bud.none': '还没有成本预算。',
  'bud.noneHint': '本周期的花费达到阈值（默认 80% 和 100%）时，预算会通知你的告警渠道。',
  'bud.name': '名称', 'bud.amount': '额度', 'bud.currency': '币种', 'bud.filter': '只计入',
  'bud.filterHint': 'app_name=Shop, tags.tier=vip', 'bud.perLabel': '分别计算', 'bud.perNone': '（合计）',
  'bud.user': '用户', 'bud.app': '应用', 'bud.thresholds': '通知阈值（额度的 %）', 'bud.notify': '渠道',
  'bud.noChannels': '没有告警渠道：在 loupe.toml 中添加 [[alerts.channels]] 才能收到通知。',
  'bud.save': '保存预算', 'bud.cancel': '取消', 'bud.edit': '编辑', 'bud.delete': '删除', 'bud.src.loupe.toml': 'loupe.toml', 'bud.src.console': '控制台',
  'bud.source': '设置于', 'bud.saved': '预算 {name} 已保存。', 'bud.deleted': '预算 {name} 已删除。',
  'bud.confirmDelete': '删除预算 {name}？本周期已发送的通知记录将被清除。',
  'bud.badFilter': '过滤条件是以逗号分隔的 key=value：{text}',
  'bud.needName': '预算需要一个名称。',
  'bud.badThresholds': '阈值是以逗号分隔的百分比，例如 80, 100：{text}',
});

const labelled = (key, control) => h('label', {class: 'field'}, h('span', {class: 'field-label'}, t(key)), control);

// "app_name=Shop, tags.tier=vip" ⇄ {app_name: 'Shop', 'tags.tier': 'vip'}.
function parseFilter(text) {
  const out = {};
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const at = part.indexOf('=');
    if (at <= 0) throw new Error(t('bud.badFilter', {text: part}));
    out[part.slice(0, at).trim()] = part.slice(at + 1).trim();
  }
  return out;
}
const showFilter = (f) => Object.entries(f || {}).map(([k, v]) => `${k}=${v}`).join(', ');

function parseThresholds(text) {
  const parts = text.split(',').map((p) => p.trim().replace(/%$/, '')).filter(Boolean);
  const out = parts.map(Number);
  if (out.some((n) => !Number.isFinite(n))) throw new Error(t('bud.badThresholds', {text}));
  return out.map((n) => Math.round(n * 1e6) / 1e8);
}

// One row per budget (per group for `per` budgets, the most spent first).
function table(list, {onEdit, onDelete}) {
  const bar = (share) => h('div', {class: 'small'},
    h('progress', {max: 1, value: Math.min(1, share), style: {width: '8em', verticalAlign: 'middle'}}), ' ', fmt.pct(share));
  const rows = [];
  for (const b of list) {
    const c = b.budget;
    const name = c.per ? `${c.name} (${t('bud.per', {per: c.per})})` : c.name;
    const groups = b.spent.length ? b.spent.slice(0, 10) : [{group: null, spent: 0, share: 0}];
    groups.forEach((g, i) => {
      const notified = (b.notified || {})[g.group ?? ''] || [];
      rows.push(h('tr', {dataset: {budget: c.name, group: g.group ?? '', source: b.source || ''}, class: g.share >= 1 ? 'bad-text' : null},
        h('td', {}, g.group != null ? `${name} · ${g.group}` : name),
        h('td', {}, t(`bud.period.${c.period}`)),
        h('td', {class: 'num'}, fmt.cost(c.amount, c.currency)),
        h('td', {class: 'num', dataset: {testid: 'budget-spent'}}, fmt.cost(g.spent, c.currency)),
        h('td', {}, bar(g.share)),
        h('td', {class: 'small'}, notified.map((x) => fmt.pct(x)).join(', ') || '—'),
        h('td', {class: 'small muted'}, i ? '' : t(`bud.src.${b.source || 'loupe.toml'}`)),
        h('td', {}, i === 0 && b.editable ? [
          h('button', {class: 'btn small', dataset: {action: 'budget-edit'}, onclick: () => onEdit(c)}, t('bud.edit')),
          ' ',
          h('button', {class: 'btn small', dataset: {action: 'budget-delete'}, 'aria-label': t('bud.delete'), onclick: () => onDelete(c.name)}, icon('trash', 12)),
        ] : null)));
    });
    if (b.groups > groups.length) rows.push(h('tr', {}, h('td', {class: 'muted small', colspan: 8}, t('bud.moreGroups', {n: fmt.num(b.groups)}))));
    // Spend in currencies [costs] has no rate for: shown, not added.
    const other = b.other_currencies || [];
    if (other.length) {
      rows.push(h('tr', {dataset: {testid: 'budget-other'}}, h('td', {class: 'muted small', colspan: 8},
        t('bud.otherCurrencies', {list: other.map((o) => fmt.cost(o.spent, o.currency)).join(', ')}))));
    }
  }
  return h('table', {class: 'table', dataset: {testid: 'budgets'}},
    h('thead', {}, h('tr', {}, [t('bud.budget'), t('bud.period'), t('bud.limit'), t('bud.spent'), '', t('bud.notified'), t('bud.source'), ''].map((c) => h('th', {}, c)))),
    h('tbody', {}, rows));
}

// Mounts the budgets section into `box`.
export function budgetsPanel(box, {signal} = {}) {
  const message = h('div', {dataset: {testid: 'budget-message'}});
  const tableBox = h('div', {});
  let channels = [];
  const els = {
    name: h('input', {class: 'input', dataset: {field: 'budget-name'}, placeholder: 'llm-month', 'aria-label': t('bud.name')}),
    amount: h('input', {class: 'input', type: 'number', min: '0', step: 'any', dataset: {field: 'budget-amount'}, style: {width: '8em'}, 'aria-label': t('bud.amount')}),
    currency: h('input', {class: 'input', dataset: {field: 'budget-currency'}, placeholder: 'USD', maxlength: '3', style: {width: '5em'}, 'aria-label': t('bud.currency')}),
    period: h('select', {class: 'input', dataset: {field: 'budget-period'}, 'aria-label': t('bud.period')},
      ['month', 'week', 'day'].map((p) => h('option', {value: p}, t(`bud.period.${p}`)))),
    filter: h('input', {class: 'input', dataset: {field: 'budget-filter'}, placeholder: t('bud.filterHint'), style: {width: '16em'}, 'aria-label': t('bud.filter')}),
    per: h('input', {class: 'input', dataset: {field: 'budget-per'}, placeholder: t('bud.perNone'), list: 'budget-per-options', style: {width: '10em'}, 'aria-label': t('bud.perLabel')}),
    thresholds: h('input', {class: 'input', dataset: {field: 'budget-thresholds'}, value: '80, 100', style: {width: '8em'}, 'aria-label': t('bud.thresholds')}),
    notify: h('div', {class: 'form-row', dataset: {field: 'budget-notify'}}),
  };
  const perOptions = h('datalist', {id: 'budget-per-options'}, ['user', 'app'].map((v) => h('option', {value: v}, t(`bud.${v}`))));
  const fail = (e) => replace(message, h('div', {class: 'panel-error', dataset: {testid: 'budget-error', status: String(e.status || '')}}, icon('alert', 14), ' ', e.message));
  const ok = (text) => replace(message, h('div', {class: 'muted', dataset: {testid: 'budget-ok'}}, text));

  function setChannels(names, chosen = []) {
    channels = names;
    replace(els.notify, names.length
      ? names.map((n) => h('label', {class: 'small'}, h('input', {type: 'checkbox', value: n, checked: chosen.includes(n), dataset: {channel: n}}), ` ${n}`))
      : h('span', {class: 'muted small'}, t('bud.noChannels')));
  }
  // The budget being edited: its name is fixed (a new name would add a
  // second budget), and fields left as filled keep their exact values
  // (a threshold of 1/3 shown as 33.33 % must not become another one).
  let editing = null;
  const filled = {};
  function fill(c) {
    editing = c;
    els.name.readOnly = !!c;
    els.name.value = c ? c.name : '';
    els.amount.value = c ? String(c.amount) : '';
    els.currency.value = c && c.currency ? c.currency : '';
    els.period.value = c ? c.period : 'month';
    els.filter.value = c ? showFilter(c.filter) : '';
    els.per.value = c && c.per ? c.per : '';
    els.thresholds.value = c ? c.thresholds.map((x) => String(Math.round(x * 1e6) / 1e4)).join(', ') : '80, 100';
    setChannels(channels, c ? c.notify : []);
    filled.filter = els.filter.value;
    filled.thresholds = els.thresholds.value;
  }
  function body() {
    const out = {
      amount: Number(els.amount.value),
      period: els.period.value,
      filter: editing && els.filter.value === filled.filter ? editing.filter : parseFilter(els.filter.value),
      thresholds: editing && els.thresholds.value === filled.thresholds ? editing.thresholds : parseThresholds(els.thresholds.value),
      notify: [...els.notify.querySelectorAll('input[type=checkbox]:checked')].map((i) => i.value),
    };
    if (els.currency.value.trim()) out.currency = els.currency.value.trim().toUpperCase();
    if (els.per.value.trim()) out.per = els.per.value.trim();
    return out;
  }
  const form = h('div', {class: 'stack', dataset: {testid: 'budget-form'}},
    h('div', {class: 'form-row'},
      labelled('bud.name', els.name), labelled('bud.amount', els.amount), labelled('bud.currency', els.currency),
      labelled('bud.period', els.period), labelled('bud.filter', els.filter), labelled('bud.perLabel', els.per),
      labelled('bud.thresholds', els.thresholds), perOptions),
    labelled('bud.notify', els.notify),
    h('div', {class: 'form-row'},
      h('button', {class: 'btn primary', dataset: {action: 'budget-save'}, onclick: save}, t('bud.save')),
      h('button', {class: 'btn', dataset: {action: 'budget-cancel'}, onclick: () => { form.hidden = true; replace(message); }}, t('bud.cancel'))));
  form.hidden = true;
  const open = (c) => { fill(c); form.hidden = false; replace(message); els.name.focus(); };

  async function save() {
    replace(message);
    const name = els.name.value.trim();
    if (!name) { fail({message: t('bud.needName')}); return; }
    let b;
    try { b = body(); } catch (e) { fail(e); return; }
    try {
      await api.put(`/api/v1/budgets/${encodeURIComponent(name)}`, b, {signal});
      form.hidden = true;
      await load();
      ok(t('bud.saved', {name}));
    } catch (e) { if (e.name !== 'AbortError') fail(e); }
  }
  async function remove(name) {
    if (!window.confirm(t('bud.confirmDelete', {name}))) return;
    replace(message);
    try {
      await api.del(`/api/v1/budgets/${encodeURIComponent(name)}`, {signal});
      await load();
      ok(t('bud.deleted', {name}));
    } catch (e) { if (e.name !== 'AbortError') fail(e); }
  }
  async function load() {
    try {
      const d = await api.get('/api/v1/budgets', {signal});
      const list = (d && d.budgets) || [];
      if (form.hidden) setChannels(d.channels || []);
      else channels = d.channels || [];
      replace(tableBox, list.length ? table(list, {onEdit: open, onDelete: remove}) : empty(t('bud.none'), t('bud.noneHint')));
      replace(box, section('budgets', t('bud.title'), [tableBox, form, message], {
        sub: list.length ? t('bud.sub', {start: fmt.time(Date.parse(list[0].period_start) * 1e6, {seconds: false})}) : null,
        actions: h('button', {class: 'btn small', dataset: {action: 'budget-new'}, onclick: () => open(null)}, icon('plus', 12), ' ', t('bud.new')),
      }));
    } catch (e) {
      // A server without budgets (404) shows nothing.
      if (e.name !== 'AbortError' && e.status !== 404) replace(box, failure(e, t('bud.title')));
    }
  }
  return load();
}
