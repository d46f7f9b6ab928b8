// Settings: retention (this project's, where it is set, and changed here
// when loupe.toml does not set it: ./retention.js), the tag rules in effect for this project (listed,
// added, previewed, removed and applied: ./tag-rules.js), the
// metrics labels (tags that are rollup dimensions), the signed-in key, and
// where each is changed (GET /api/v1/settings); and the project's API keys
// (list, create with a scope, revoke: ./keys.js, admin keys only; other
// keys see the public keys read-only).
import {h, icon, replace} from '../dom.js';
import {t} from '../i18n.js';
import * as api from '../api.js';
import * as fmt from '../format.js';
import {section, kv, failure, empty} from '../widgets.js';
import {keysPanel} from './keys.js';
import {tagRulesPanel} from './tag-rules.js';
import {retentionPanel} from './retention.js';

export function mount(ctx) {
  ctx.setTitle(t('settings.title'));
  const controller = new AbortController();
  const box = h('div', {class: 'stack'}, h('div', {class: 'skeleton tall'}));
  replace(ctx.el, box);

  const keysBox = h('div', {}, h('div', {class: 'skeleton'}));
  const tagsBox = h('div', {}, h('div', {class: 'skeleton'}));
  // Admin keys manage keys here; other keys see the public keys only.
  const readOnlyKeys = (s, denied) => replace(keysBox,
    Array.isArray(s.keys) && s.keys.length ? h('table', {class: 'table', dataset: {testid: 'keys'}},
      h('thead', {}, h('tr', {}, h('th', {}, t('settings.publicKey')), h('th', {}, t('settings.created')), h('th', {}, t('settings.keySource')))),
      h('tbody', {}, s.keys.map((k) => h('tr', {dataset: {key: k.public_key}},
        h('td', {class: 'mono'}, k.public_key), h('td', {}, k.created_at ? fmt.time(Date.parse(k.created_at) * 1e6, {seconds: false}) : '—'),
        h('td', {class: 'small'}, k.source))))) : null,
    failure(denied, t('keys.canManage')),
    h('pre', {class: 'code'}, 'loupe keys create --project <project> --scope read\nloupe keys list'));

  function render(s) {
    const ret = s.retention || {};
    const retentionBox = h('div', {class: 'stack'});
    // After a change, the retention in force as the server now says.
    const mountRetention = (r) => retentionPanel(retentionBox, r, {
      onSaved: () => api.get('/api/v1/settings', {signal: controller.signal})
        .then((fresh) => mountRetention(fresh.retention || {}))
        .catch((e) => { if (e.name !== 'AbortError') replace(retentionBox, failure(e, t('settings.canRead'))); }),
    });
    mountRetention(ret);
    const metrics = s.metrics || {};
    const labels = Array.isArray(metrics.labels) ? metrics.labels : [];
    replace(box,
      h('div', {class: 'grid cols-2'},
        section('retention', t('settings.retention'), retentionBox),
        section('session', t('settings.access'), [
          kv([
            [t('nav.project'), h('span', {class: 'mono'}, s.project || ctx.session.project || '—')],
            [t('settings.auth'), ctx.session.enforced ? t('settings.keysRequired') : t('settings.open')],
            [t('settings.signedInWith'), ctx.session.via ? t(`settings.via.${ctx.session.via}`) : null],
          ], 'access'),
          h('p', {class: 'muted small'}, t('settings.keysHint')),
        ])),
      section('keys', t('keys.title'), keysBox, {sub: t('keys.sub')}),
      section('tag-rules', t('settings.tagRules'), tagsBox,
      {sub: t('settings.tagRulesSub')}),
      h('div', {class: 'grid cols-2'},
        section('metrics', t('settings.metrics'), [
          h('div', {class: 'chips', dataset: {testid: 'metrics-labels'}}, labels.length ? labels.map((l) => h('span', {class: 'chip mono'}, l)) : h('span', {class: 'muted'}, '—')),
          kv([
            [t('settings.hourTags'), Array.isArray(metrics.hour_tags) && metrics.hour_tags.length
              ? h('span', {class: 'mono', dataset: {testid: 'hour-tags'}}, metrics.hour_tags.join(', ')) : null],
            [t('settings.maxSeries'), metrics.max_series_per_app == null ? null : fmt.num(metrics.max_series_per_app)],
            [t('settings.minutesKept'), metrics.minutes_kept == null ? null : fmt.num(metrics.minutes_kept)],
            [t('settings.fromRollups'), s.answer_from_rollups ? t('settings.yes') : t('settings.no')],
          ]),
          h('p', {class: 'muted small'}, t('settings.labelsHint')),
        ]),
        section('integrations', t('settings.integrations'), [
          kv([
            [t('settings.backend'), s.backend ? h('span', {dataset: {testid: 'backend'}}, t(s.backend === 'clickhouse' ? 'settings.backendClickhouse' : 'settings.backendEmbedded')) : null],
            [t('settings.alerting'), s.alerts_enabled ? h('a', {href: '/alerts'}, t('settings.enabled')) : t('settings.disabled')],
            [t('settings.difySync'), s.dify && s.dify.sync ? h('a', {href: '/dify'}, t('settings.enabled')) : t('settings.disabled')],
            [t('settings.difyWeb'), s.dify && s.dify.web_url ? h('a', {href: s.dify.web_url, target: '_blank', rel: 'noopener noreferrer'}, s.dify.web_url, ' ', icon('external', 12)) : null],
          ], 'integrations'),
          h('p', {class: 'muted small'}, t('settings.configHint')),
        ])));
  }

  api.get('/api/v1/settings', {signal: controller.signal}).then((s) => {
    render(s);
    tagRulesPanel(tagsBox, {labels: (s.metrics || {}).labels || [], signal: controller.signal});
    keysPanel(keysBox, {signal: controller.signal, onDenied: (e) => readOnlyKeys(s, e), onKeysRequired: () => location.assign('/settings')});
  })
    .catch((e) => { if (e.name !== 'AbortError') replace(box, failure(e, t('settings.canRead'))); });
  return () => controller.abort();
}
