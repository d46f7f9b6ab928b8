// Retention on the Settings page: this project's retention in force, where
// it is set (loupe.toml, the console, the server's default), and — when
// loupe.toml does not name the project — a form that previews what a new
// retention drops (POST /api/v1/settings/retention/preview) before saving it
// (PUT /api/v1/settings/retention; a drop needs an explicit confirmation,
// which the server checks too). The server validates: its 4xx is shown.
import {h, icon, replace} from '../dom.js';
import {t} from '../i18n.js';
import * as api from '../api.js';
import * as fmt from '../format.js';
import {kv} from '../widgets.js';

const days = (n) => (n === 0 ? t('settings.forever') : t('settings.days', {n: fmt.num(n)}));

function previewView(p) {
  const d = p.drops || {};
  const dropping = (d.parts || 0) + (d.log_parts || 0) > 0;
  return h('div', {class: 'stack small', dataset: {testid: 'retention-preview', spans: String(d.spans || 0)}},
    h('p', {class: dropping ? 'bad-text' : 'muted'}, dropping
      ? t('ret.drops', {spans: fmt.num(d.spans || 0), logs: fmt.num(d.log_records || 0), mb: fmt.num(Math.ceil((d.bytes || 0) / 1e6)), day: p.first_day_kept ? p.first_day_kept.slice(0, 10) : '—'})
      : t('ret.dropsNothing')),
    dropping && p.dify_project ? h('p', {class: 'muted'}, icon('alert', 12), ' ', t('ret.difyWarning')) : null);
}

// Mounts into `box`; `ret`: GET /api/v1/settings' retention; `onSaved`
// reloads the page's settings.
export function retentionPanel(box, ret, {onSaved}) {
  const message = h('div', {dataset: {testid: 'retention-message'}});
  const fail = (e) => replace(message, h('div', {class: 'panel-error', dataset: {testid: 'retention-error', status: String(e.status || '')}}, icon('alert', 14), ' ', e.message));
  const source = h('span', {dataset: {testid: 'retention-source', source: ret.source || ''}}, t(`ret.src.${ret.source || 'default'}`));
  const rows = kv([
    [t('settings.thisProject'), h('strong', {dataset: {testid: 'retention-days'}}, ret.days == null ? '—' : days(ret.days))],
    [t('ret.source'), source],
    [t('settings.globalDefault'), ret.global_days == null ? null : days(ret.global_days)],
    [t('settings.override'), ret.project_override == null ? t('settings.noOverride') : days(ret.project_override)],
  ], 'retention');
  if (!ret.editable) {
    replace(box, rows, h('p', {class: 'muted small'}, t(ret.source === 'loupe.toml' ? 'ret.setInToml' : 'settings.retentionHint')));
    return;
  }
  const input = h('input', {class: 'input', type: 'number', min: '0', step: '1', value: String(ret.days ?? ''), dataset: {field: 'retention-days'}, 'aria-label': t('ret.newDays'), style: {width: '8em'}});
  const wanted = () => {
    const n = Number(input.value);
    return Number.isInteger(n) && n >= 0 ? n : null;
  };
  async function preview(n) {
    try {
      const p = await api.post('/api/v1/settings/retention/preview', {days: n});
      replace(message, previewView(p));
      return p;
    } catch (e) { fail(e); return null; }
  }
  // `n`: days, or null to go back to the server's default.
  async function save(n) {
    const p = await preview(n ?? ret.global_days);
    if (!p) return;
    const d = p.drops || {};
    const dropping = (d.parts || 0) + (d.log_parts || 0) > 0;
    if (dropping && !window.confirm(t('ret.confirm', {spans: fmt.num(d.spans || 0), days: n === null ? t('ret.default') : days(n)}))) return;
    try {
      await api.put('/api/v1/settings/retention', {days: n, confirm: dropping});
      onSaved();
    } catch (e) { fail(e); }
  }
  const checked = (then) => () => {
    const n = wanted();
    if (n == null) fail({message: t('ret.badDays')});
    else then(n);
  };
  replace(box, rows,
    h('div', {class: 'form-row'},
      h('label', {class: 'field'}, h('span', {class: 'field-label'}, t('ret.newDays')), input),
      h('button', {class: 'btn', dataset: {action: 'retention-preview'}, onclick: checked(preview)}, t('ret.preview')),
      h('button', {class: 'btn primary', dataset: {action: 'retention-save'}, onclick: checked(save)}, t('ret.save')),
      ret.source === 'console' ? h('button', {class: 'btn', dataset: {action: 'retention-reset'}, onclick: () => save(null)}, t('ret.reset')) : null),
    h('p', {class: 'muted small'}, t('ret.hint')),
    message);
}
