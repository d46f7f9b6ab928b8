// Cleaning Dify's database from the console (/api/v1/dify/cleanups/job):
// a form (older than, scope, batch, dry run), a real run only after a
// confirmation, the running job's progress polled every 2 s with a stop
// button, and the finished job's report (rows per table, verified,
// skipped and why, bytes freed). The server runs the CLI's cleaner with
// its guarantees; its 409/422 name the problem and are shown as given.
import {h, icon, replace} from '../dom.js';
import {t} from '../i18n.js';
import * as api from '../api.js';
import * as fmt from '../format.js';
import {bytes} from './dify-health.js';

const PATH = '/api/v1/dify/cleanups/job';
const SCOPES = ['runs', 'nodes', 'messages'];
const LIVE = ['connecting', 'running', 'stopping'];

const labelled = (key, control) => h('label', {class: 'field'}, h('span', {class: 'field-label'}, t(key)), control);

function report(r) {
  const verb = r.dry_run ? t('dify.c.wouldDelete') : t('dify.c.deleted');
  const tables = Object.keys(r.deleted || {}).sort();
  return h('div', {class: 'stack', dataset: {testid: 'cleanup-report', complete: String(!!r.complete)}},
    h('table', {class: 'table'},
      h('thead', {}, h('tr', {}, h('th', {}, t('dify.table')), h('th', {class: 'num'}, verb), h('th', {class: 'num'}, t('dify.c.bytes')))),
      h('tbody', {}, tables.map((n) => h('tr', {dataset: {table: n}},
        h('td', {class: 'mono'}, n), h('td', {class: 'num'}, fmt.num(r.deleted[n])),
        h('td', {class: 'num'}, bytes((r.avg_row_bytes || {})[n] * r.deleted[n])))),
      h('tr', {class: 'total'}, h('td', {}, t('dify.c.total')),
        h('td', {class: 'num', dataset: {testid: 'cleanup-total'}}, fmt.num(tables.reduce((a, n) => a + r.deleted[n], 0))),
        h('td', {class: 'num'}, bytes(r.estimated_bytes_freed || 0))))),
    h('p', {class: 'muted small'}, t('dify.c.summary', {
      v: fmt.num(r.verified || 0), u: fmt.num(r.skipped_unverified || 0), l: fmt.num(r.skipped_locked || 0),
      o: fmt.num(r.skipped_open || 0), b: fmt.num(r.batches || 0), s: ((r.elapsed_ms || 0) / 1000).toFixed(1)})),
    r.stopped ? h('p', {class: 'warn-text', dataset: {testid: 'cleanup-stopped'}}, t('dify.c.incomplete', {why: r.stopped})) : null,
    (r.skipped || []).filter((s) => s.reason !== 'open').slice(0, 20).map((s) =>
      h('div', {class: 'small mono'}, `${s.id} (${s.reason}): ${s.detail}`)));
}

function jobView(job, onStop) {
  if (!job) return h('p', {class: 'muted', dataset: {testid: 'cleanup-none'}}, t('dify.c.none'));
  const live = LIVE.includes(job.phase);
  const pct = job.total ? Math.min(100, Math.round((job.done / job.total) * 100)) : 0;
  const req = job.request || {};
  return h('div', {class: 'stack', dataset: {testid: 'cleanup-job', phase: job.phase}},
    h('div', {class: 'form-row'},
      h('span', {class: ['badge', job.phase === 'failed' ? 'st-error' : live ? 'ph-pending' : 'st-ok']}, t(`dify.c.phase.${job.phase}`)),
      h('span', {class: 'muted'}, t('dify.c.what', {scope: req.scope, older: req.older_than, mode: req.dry_run ? t('dify.c.dry') : t('dify.c.real')})),
      h('span', {class: 'muted small'}, fmt.time(Date.parse(job.started_at) * 1e6)),
      live && job.phase !== 'stopping' ? h('button', {class: 'btn small', dataset: {testid: 'cleanup-stop'}, onclick: onStop}, icon('x', 12), t('dify.c.stop')) : null),
    live ? h('div', {},
      h('progress', {max: 100, value: pct, style: {width: '100%'}, 'aria-label': t('dify.c.progress')}),
      h('div', {class: 'muted small'}, t('dify.c.progressText', {done: fmt.num(job.done), total: fmt.num(job.total), deleted: fmt.num(job.deleted)}))) : null,
    job.error ? h('div', {class: 'panel-error', dataset: {testid: 'cleanup-error'}}, icon('alert', 14), ' ', job.error) : null,
    job.report ? report(job.report) : null);
}

// Mounts the cleanup form and job into `box`; returns a stop function.
export function mountCleanup(box, signal) {
  const older = h('input', {class: 'input', value: '30d', dataset: {field: 'older_than'}, placeholder: '30d', 'aria-label': t('dify.c.olderThan')});
  const scope = h('select', {class: 'input', dataset: {field: 'scope'}, 'aria-label': t('dify.c.scope')},
    SCOPES.map((s) => h('option', {value: s}, t(`dify.c.scope.${s}`))));
  const batch = h('input', {class: 'input', type: 'number', min: 1, max: 10000, value: 500, dataset: {field: 'batch'}, 'aria-label': t('dify.c.batch')});
  const message = h('div', {dataset: {testid: 'cleanup-message'}});
  const jobBox = h('div', {});
  let timer = null;
  let live = false;

  function show(job) {
    live = !!job && LIVE.includes(job.phase);
    dryBtn.disabled = realBtn.disabled = live;
    replace(jobBox, jobView(job, stop));
    clearTimeout(timer);
    if (live) timer = setTimeout(load, 2000);
  }
  async function load() {
    try {
      show((await api.get(PATH, {signal})).job);
    } catch (e) {
      if (e.name !== 'AbortError') replace(message, h('div', {class: 'panel-error'}, icon('alert', 14), ' ', e.message));
    }
  }
  async function start(dryRun) {
    if (!dryRun && !window.confirm(t('dify.c.confirm', {older: older.value, scope: scope.value}))) return;
    replace(message);
    dryBtn.disabled = realBtn.disabled = true;
    try {
      const res = await api.post(PATH, {older_than: older.value, scope: scope.value, dry_run: dryRun, batch: Number(batch.value) || 500}, {signal});
      show(res.job);
    } catch (e) {
      if (e.name === 'AbortError') return;
      replace(message, h('div', {class: 'panel-error', dataset: {testid: 'cleanup-refused', status: String(e.status || '')}}, icon('alert', 14), ' ', e.message));
      dryBtn.disabled = realBtn.disabled = live;
    }
  }
  async function stop() {
    try {
      show((await api.del(PATH, {signal})).job);
    } catch (e) {
      if (e.name !== 'AbortError') replace(message, h('div', {class: 'panel-error'}, icon('alert', 14), ' ', e.message));
    }
  }
  const dryBtn = h('button', {class: 'btn primary', dataset: {testid: 'cleanup-dry-run'}, onclick: () => start(true)}, t('dify.c.dryRun'));
  const realBtn = h('button', {class: 'btn', dataset: {testid: 'cleanup-run'}, onclick: () => start(false)}, icon('trash', 14), t('dify.c.run'));
  replace(box,
    h('p', {class: 'muted'}, t('dify.cleanupText')),
    h('div', {class: 'form-row', dataset: {testid: 'cleanup-form'}},
      labelled('dify.c.olderThan', older), labelled('dify.c.scope', scope), labelled('dify.c.batch', batch),
      h('div', {class: 'form-row', style: {alignSelf: 'flex-end'}}, dryBtn, realBtn)),
    message, jobBox,
    h('p', {class: 'muted small'}, t('dify.cleanupHint')),
    h('pre', {class: 'code'}, 'loupe dify cleanup --dsn "$DIFY_DSN" --older-than 30d --dry-run'));
  load();
  return () => clearTimeout(timer);
}
