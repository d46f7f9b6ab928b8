// Dify: the database sync writing into this project (GET
// /api/v1/dify/status): lag since the last successful pass, the last pass
// (when, how long, rows per table, rows skipped as older than retention,
// its error), totals since the server started; then the database's
// health and cleanups (dify-health.js), and a cleanup of Dify's tables
// started, watched and stopped here (dify-cleanup.js), or from the CLI.
import {h, icon, replace} from '../dom.js';
import {t} from '../i18n.js';
import * as api from '../api.js';
import * as fmt from '../format.js';
import {section, kv, failure, empty} from '../widgets.js';
import {mountHealth} from './dify-health.js';
import {mountCleanup} from './dify-cleanup.js';

function stat(id, label, value, sub, cls) {
  return h('div', {class: 'stat', dataset: {stat: id}}, h('div', {class: 'stat-label'}, label),
    h('div', {class: ['stat-value', cls]}, value), sub ? h('div', {class: 'stat-sub'}, sub) : null);
}

function seconds(s) {
  return s == null ? '—' : fmt.duration(s * 1e9);
}

function tableCounts(rows, skipped, testid = 'dify-tables') {
  const names = [...new Set([...Object.keys(rows || {}), ...Object.keys(skipped || {})])].sort();
  if (!names.length) return empty(t('dify.nothingRead'));
  return h('table', {class: 'table', dataset: {testid}},
    h('thead', {}, h('tr', {}, h('th', {}, t('dify.table')), h('th', {class: 'num'}, t('dify.rowsRead')), h('th', {class: 'num'}, t('dify.skipped')))),
    h('tbody', {}, names.map((n) => h('tr', {dataset: {table: n}},
      h('td', {class: 'mono'}, n), h('td', {class: 'num'}, fmt.num((rows || {})[n] || 0)),
      h('td', {class: ['num', (skipped || {})[n] > 0 && 'warn-text']}, fmt.num((skipped || {})[n] || 0))))));
}

export function mount(ctx) {
  ctx.setTitle(t('dify.title'));
  const controller = new AbortController();
  const box = h('div', {class: 'stack'}, h('div', {class: 'skeleton tall'}));
  const healthBox = h('div', {class: 'stack', dataset: {testid: 'dify-health'}});
  let refreshHealth = () => {};
  // Mounted once: the status refresh every 10 s must not reset the form.
  const cleanupBox = h('div', {class: 'stack', dataset: {testid: 'dify-cleanup'}});
  let cleanupMounted = false;
  let stopCleanup = () => {};
  replace(ctx.actions, h('button', {class: 'btn icon-only', title: t('refresh.now'), 'aria-label': t('refresh.now'),
    onclick: () => { load(); refreshHealth(); }}, icon('refresh')));
  replace(ctx.el, h('div', {class: 'stack'}, box, healthBox));

  function render(d) {
    if (!d.configured) {
      replace(box, section('dify-sync', t('dify.sync'), [empty(t('dify.notConfigured'), t('dify.configHint')),
        h('pre', {class: 'code'}, '[dify]\ndsn = "postgres://dify:…@db:5432/dify"\nproject = "default"\nweb_url = "<Dify console address>"')]));
      box.firstChild.dataset.configured = 'false';
      return;
    }
    const tot = d.totals || {};
    const last = d.last_pass || {};
    const lag = d.lag_seconds;
    const interval = fmt.duration((parseDuration(d.interval) || 30) * 1e9);
    const healthy = lag != null && !last.error && lag < 3 * (parseDuration(d.interval) || 30) + 60;
    const status = !d.running ? 'stopped' : lag == null ? (last.error ? 'failing' : 'starting') : healthy ? 'ok' : last.error ? 'failing' : 'behind';
    replace(box,
      h('div', {class: 'stats', dataset: {testid: 'dify-stats', status}},
        stat('status', t('dify.status'), h('span', {class: ['badge', status === 'ok' ? 'st-ok' : status === 'starting' ? 'ph-pending' : 'st-error']}, t(`dify.st.${status}`)),
          t('dify.every', {d: interval})),
        stat('lag', t('dify.lag'), seconds(lag), d.last_success_unix ? fmt.time(d.last_success_unix * 1e9) : t('dify.never'), healthy ? 'good' : lag == null ? '' : 'bad'),
        stat('rows', t('dify.rows'), fmt.compact(tot.rows || 0), t('dify.spansWritten', {n: fmt.num(tot.spans || 0)})),
        stat('open', t('dify.openRuns'), fmt.num(d.open_runs || 0), t('dify.openHint')),
        stat('skipped', t('dify.skippedTotal'), fmt.num(tot.skipped_older_than_retention || 0), t('dify.skippedHint', {mode: d.older_than_retention || 'skip'}),
          tot.skipped_older_than_retention ? 'warn' : '')),
      h('div', {class: 'grid cols-2'},
        section('last-pass', t('dify.lastPass'), [
          kv([
            [t('dify.ended'), last.ended_unix_ms ? `${fmt.time(last.ended_unix_ms * 1e6)} · ${fmt.ago(last.ended_unix_ms * 1e6)}` : t('dify.never')],
            [t('dify.took'), last.ended_unix_ms ? fmt.duration((last.took_ms || 0) * 1e6) : null],
            [t('dify.spans'), last.ended_unix_ms ? fmt.num(last.spans || 0) : null],
          ], 'dify-last'),
          last.error ? h('div', {class: 'panel-error', dataset: {testid: 'dify-error'}}, icon('alert', 14), ' ', last.error) : null,
          tableCounts(last.rows, last.skipped),
        ]),
        section('totals', t('dify.sinceStart'), [
          kv([
            [t('dify.passes'), fmt.num(tot.passes || 0)],
            [t('dify.failures'), h('span', {class: tot.failures ? 'bad-text' : ''}, fmt.num(tot.failures || 0))],
            [t('dify.lastError'), last.last_error ? `${fmt.time(last.last_error[0] * 1e6)}: ${last.last_error[1]}` : null],
            [t('dify.project'), d.project],
            [t('dify.batch'), fmt.num(d.batch || 0)],
            [t('dify.olderThanRetention'), d.older_than_retention],
            [t('dify.storage'), d.storage_dir ? t('dify.storageOn') : t('dify.storageOff')],
            [t('dify.webUrl'), d.web_url ? h('a', {href: d.web_url, target: '_blank', rel: 'noopener noreferrer'}, d.web_url, ' ', icon('external', 12)) : null],
          ], 'dify-totals'),
          last.rows_total || last.skipped_total ? tableCounts(last.rows_total, last.skipped_total, 'dify-tables-total') : null,
        ])),
      section('cleanup', t('dify.cleanup'), [d.cleanups ? cleanupBox : h('div', {},
        h('p', {class: 'muted'}, t('dify.cleanupText')),
        h('pre', {class: 'code'}, 'loupe dify cleanup --dsn "$DIFY_DSN" --older-than 30d --dry-run'))]));
    if (d.cleanups && !cleanupMounted) {
      cleanupMounted = true;
      stopCleanup = mountCleanup(cleanupBox, controller.signal);
    }
  }

  async function load() {
    try {
      render(await api.get('/api/v1/dify/status', {signal: controller.signal}));
    } catch (e) {
      if (e.name !== 'AbortError') replace(box, failure(e, t('dify.canRead')));
    }
  }
  load();
  refreshHealth = mountHealth(healthBox, controller.signal);
  const timer = setInterval(load, 10000);
  const healthTimer = setInterval(() => refreshHealth(), 60000);
  return () => { clearInterval(timer); clearInterval(healthTimer); stopCleanup(); controller.abort(); };
}

// "30s", "5m", "1h" → seconds (the sync's interval as configured).
function parseDuration(text) {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(String(text || '').trim());
  if (!m) return null;
  const n = Number(m[1]);
  return {ms: n / 1000, s: n, m: n * 60, h: n * 3600}[m[2] || 's'];
}
