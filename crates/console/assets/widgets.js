// Small building blocks shared by the alerts, Dify and settings pages:
// a titled section, a key/value list, and how an API failure reads (a key
// without the scope gets "this key cannot …", not a raw status).
import {h, icon} from './dom.js';
import {t} from './i18n.js';

export function section(id, title, body, {sub, actions} = {}) {
  return h('section', {class: 'panel', dataset: {section: id}},
    h('header', {class: 'panel-head'}, h('h2', {}, title), sub ? h('span', {class: 'panel-sub'}, sub) : null,
      actions ? h('div', {class: 'panel-actions'}, actions) : null),
    h('div', {class: 'panel-body'}, body));
}

// [[label, value], …] as a definition list; null values show a dash.
export function kv(rows, testid) {
  return h('dl', {class: 'kvlist', dataset: testid ? {testid} : {}},
    rows.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v == null || v === '' ? '—' : v)]));
}

// The message for a failed call: `what` names the action ("read alerts").
export function failure(e, what) {
  if (e && e.status === 403) return h('div', {class: 'panel-error denied', dataset: {denied: 'true'}}, icon('key', 14), ' ',
    t('common.denied', {what}), e.message && e.message !== 'HTTP 403' ? h('span', {class: 'muted small'}, ` (${e.message})`) : null);
  return h('div', {class: 'panel-error'}, icon('alert', 14), ' ', e ? e.message : '');
}

export function empty(text, hint) {
  return h('div', {class: 'empty-state'}, h('p', {}, text), hint ? h('p', {class: 'muted small'}, hint) : null);
}
