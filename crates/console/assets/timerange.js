// The time range of a page: a relative window (last 15m … 30d) or an
// absolute one, kept in the URL (?range=24h or ?from=…&to=…), plus the
// picker and the auto-refresh control.
import {h, icon} from './dom.js';
import {t} from './i18n.js';
import * as fmt from './format.js';

export const RANGES = ['15m', '1h', '6h', '24h', '7d', '30d'];
const UNIT = {m: 60e9, h: 3600e9, d: 86400e9};
export const REFRESH = [0, 10, 30, 60, 300];

export function parseDur(text) {
  const m = /^(\d+)([mhd])$/.exec(text || '');
  return m ? Number(m[1]) * UNIT[m[2]] : null;
}

// From URL params: {kind: 'last', last: '24h'} or {kind: 'abs', from, to} (ms).
export function fromParams(params, fallback = '24h') {
  const from = params.get('from');
  const to = params.get('to');
  if (from && to) {
    const f = Date.parse(from);
    const tt = Date.parse(to);
    if (!Number.isNaN(f) && !Number.isNaN(tt) && tt > f) return {kind: 'abs', from: f, to: tt};
  }
  const r = params.get('range');
  return {kind: 'last', last: parseDur(r) ? r : fallback};
}

export function toParams(range, params) {
  params.delete('range');
  params.delete('from');
  params.delete('to');
  if (range.kind === 'abs') {
    params.set('from', new Date(range.from).toISOString());
    params.set('to', new Date(range.to).toISOString());
  } else {
    params.set('range', range.last);
  }
  return params;
}

// [fromNs, toNs] of the range at `nowMs`.
export function bounds(range, nowMs = Date.now()) {
  if (range.kind === 'abs') return [range.from * 1e6, range.to * 1e6];
  return [nowMs * 1e6 - parseDur(range.last), nowMs * 1e6];
}

// The query language's time clause.
export function clause(range) {
  if (range.kind === 'abs') {
    return `from ${new Date(range.from).toISOString()} to ${new Date(range.to).toISOString()}`;
  }
  return `last ${range.last}`;
}

// A bucket width for about 30–120 points; whole hours from 24 h up, so the
// hour rollups can answer.
export function bucket(range) {
  const [f, tt] = bounds(range);
  const span = tt - f;
  const steps = [
    [60e9, '1m'], [300e9, '5m'], [600e9, '10m'], [1800e9, '30m'], [3600e9, '1h'],
    [3 * 3600e9, '3h'], [6 * 3600e9, '6h'], [12 * 3600e9, '12h'], [86400e9, '1d'],
  ];
  if (span <= 30 * 60e9) return [30e9, '30s'];
  const minHour = span >= 24 * 3600e9;
  for (const [w, text] of steps) {
    if (minHour && w < 3600e9) continue;
    if (span / w <= 120) return [w, text];
  }
  return [86400e9, '1d'];
}

export function label(range) {
  if (range.kind === 'abs') {
    return `${fmt.time(range.from * 1e6, {seconds: false})} → ${fmt.time(range.to * 1e6, {seconds: false})}`;
  }
  return t(`range.${range.last}`);
}

function localInput(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

// The picker: a button that opens quick ranges and absolute from/to.
export function picker(range, onChange) {
  let open = false;
  const fromIn = h('input', {type: 'datetime-local', value: localInput(bounds(range)[0] / 1e6)});
  const toIn = h('input', {type: 'datetime-local', value: localInput(bounds(range)[1] / 1e6)});
  const menu = h('div', {class: 'menu timerange-menu', hidden: true},
    h('div', {class: 'menu-cols'},
      h('div', {class: 'menu-col'},
        h('div', {class: 'menu-title'}, t('range.quick')),
        RANGES.map((r) => h('button', {
          class: ['menu-item', range.kind === 'last' && range.last === r && 'active'],
          dataset: {range: r},
          onclick: () => { close(); onChange({kind: 'last', last: r}); },
        }, t(`range.${r}`)))),
      h('div', {class: 'menu-col abs'},
        h('div', {class: 'menu-title'}, t('range.absolute')),
        h('label', {}, t('range.from'), fromIn),
        h('label', {}, t('range.to'), toIn),
        h('button', {
          class: 'btn primary',
          onclick: () => {
            const f = Date.parse(fromIn.value);
            const tt = Date.parse(toIn.value);
            if (Number.isNaN(f) || Number.isNaN(tt) || tt <= f) return;
            close();
            onChange({kind: 'abs', from: f, to: tt});
          },
        }, t('range.apply')))));
  const button = h('button', {class: 'btn timerange-btn', onclick: (e) => { e.stopPropagation(); open ? close() : show(); }},
    icon('clock'), h('span', {}, label(range)), icon('down', 14));
  const wrap = h('div', {class: 'dropdown timerange'}, button, menu);
  const outside = (e) => { if (!wrap.contains(e.target)) close(); };
  function show() {
    open = true;
    menu.hidden = false;
    document.addEventListener('click', outside);
  }
  function close() {
    open = false;
    menu.hidden = true;
    document.removeEventListener('click', outside);
  }
  return wrap;
}

// Auto refresh: a select of intervals; calls tick() every interval.
export function autoRefresh(initial, onSet) {
  const sel = h('select', {class: 'refresh-select', title: t('refresh.title'),
    onchange: () => onSet(Number(sel.value))},
  REFRESH.map((s) => h('option', {value: s, selected: s === initial},
    s === 0 ? t('refresh.off') : s < 60 ? `${s}s` : `${s / 60}m`)));
  return h('label', {class: 'refresh'}, icon('refresh', 14), sel);
}
