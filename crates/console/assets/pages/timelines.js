// Sessions and users: lists of the most recently active in the time range
// (GET /api/v1/sessions, /api/v1/users: grouped from the newest runs), a
// conversation as an ordered timeline of turns (GET /api/v1/sessions/{id}),
// and a user's runs, failure rate, latency, cost and feedback
// (GET /api/v1/users/{id}).
import {h, icon, replace} from '../dom.js';
import {t} from '../i18n.js';
import * as api from '../api.js';
import * as fmt from '../format.js';
import * as tr from '../timerange.js';

const badge = (s) => h('span', {class: ['badge', `st-${s || 'unset'}`]}, t(`status.${s || 'unset'}`));

function openBox(kind, ctx) {
  const input = h('input', {class: 'id-input', placeholder: t(`timeline.${kind}Id`)});
  return h('form', {class: 'id-form', onsubmit: (e) => {
    e.preventDefault();
    if (input.value.trim()) ctx.go(`/${kind === 'session' ? 'sessions' : 'users'}/${encodeURIComponent(input.value.trim())}`);
  }}, input, h('button', {class: 'btn', type: 'submit'}, t('timeline.open')));
}

function list(ctx, kind) {
  const plural = kind === 'session' ? 'sessions' : 'users';
  ctx.setTitle(t(`nav.${plural}`));
  let range = tr.fromParams(ctx.search, '7d');
  const field = kind === 'session' ? 'session_id' : 'user_id';
  const box = h('div', {class: 'panel'}, h('div', {class: 'skeleton tall'}));
  const actions = () => replace(ctx.actions, tr.picker(range, (r) => {
    range = r;
    history.replaceState({}, '', `/${plural}?${tr.toParams(r, new URLSearchParams())}`);
    actions();
    load();
  }));
  actions();
  replace(ctx.el, h('div', {class: 'toolbar'}, openBox(kind, ctx)), box);
  const controller = new AbortController();
  async function load() {
    const [from, to] = tr.bounds(range);
    const params = new URLSearchParams({from: String(Math.round(from)), to: String(Math.round(to)), limit: '100'});
    try {
      const res = await api.get(`/api/v1/${plural}?${params}`, {signal: controller.signal});
      if (!res.items.length) { replace(box, h('div', {class: 'empty-state'}, t(`timeline.no${kind === 'session' ? 'Sessions' : 'Users'}`))); return; }
      // Counted over the newest runs read; say so when they were not all of the range's.
      const note = res.complete ? null : h('p', {class: 'muted small', dataset: {testid: 'list-note'}},
        t('timeline.recentNote', {n: fmt.num(res.runs_read), since: fmt.time(res.since, {seconds: false})}));
      replace(box, note, h('table', {class: 'table', dataset: {testid: `${plural}-table`}},
        h('thead', {}, h('tr', {},
          h('th', {}, t(`timeline.${kind}`)), kind === 'session' ? h('th', {}, t('timeline.user')) : null,
          h('th', {class: 'num'}, t('timeline.runs')), h('th', {class: 'num'}, t('timeline.failureRate')),
          kind === 'user' ? h('th', {class: 'num'}, 'p95') : null, h('th', {}, t('timeline.lastSeen')))),
        h('tbody', {}, res.items.map((r) => {
          const href = `/${plural}/${encodeURIComponent(r[field])}`;
          return h('tr', {class: 'row', dataset: {id: r[field]}, onclick: (e) => { if (!e.target.closest('a')) ctx.go(href); }},
            h('td', {class: 'mono'}, h('a', {href}, r[field])),
            kind === 'session' ? h('td', {class: 'mono small'}, r.user_id ? h('a', {href: `/users/${encodeURIComponent(r.user_id)}`}, fmt.short(r.user_id, 16)) : '—') : null,
            h('td', {class: 'num'}, fmt.num(r.runs)),
            h('td', {class: ['num', r.failure_rate > 0 && 'bad-text']}, fmt.pct(r.failure_rate)),
            kind === 'user' ? h('td', {class: 'num'}, fmt.duration(r.p95_latency_ns)) : null,
            h('td', {}, fmt.time(r.last_seen), h('span', {class: 'muted small'}, ` · ${fmt.ago(r.last_seen)}`)));
        }))));
    } catch (e) {
      if (e.name !== 'AbortError') replace(box, h('div', {class: 'panel-error'}, icon('alert', 14), ' ', e.message));
    }
  }
  load();
  return () => controller.abort();
}

function runRow(ctx, r, i) {
  const href = `/runs/${encodeURIComponent(r.run_id || r.trace_id)}`;
  return h('li', {class: ['turn', r.status === 'error' && 'is-error']},
    h('div', {class: 'turn-marker'}, h('span', {}, String(i + 1))),
    h('a', {class: 'turn-card', href},
      h('div', {class: 'turn-head'}, badge(r.status), h('span', {class: 'turn-time'}, fmt.time(r.start_time)),
        h('span', {class: 'muted small'}, r.name || '')),
      h('div', {class: 'turn-facts'},
        h('span', {}, icon('clock', 12), ' ', fmt.duration(r.latency_ns)),
        h('span', {}, `${fmt.num(r.total_tokens || 0)} ${t('timeline.tokens')}`),
        h('span', {}, fmt.cost(r.cost || 0))),
      r.error_message ? h('div', {class: 'turn-error'}, r.error_message) : null));
}

function metric(label, value, cls) {
  return h('div', {class: 'stat'}, h('div', {class: 'stat-label'}, label), h('div', {class: ['stat-value', cls]}, value));
}

function one(ctx, kind, id) {
  const plural = kind === 'session' ? 'sessions' : 'users';
  ctx.setTitle(`${t(`timeline.${kind}`)} ${fmt.short(id, 24)}`, [[t(`nav.${plural}`), `/${plural}`]]);
  replace(ctx.el, h('div', {class: 'panel'}, h('div', {class: 'skeleton tall'})));
  const controller = new AbortController();
  api.get(`/api/v1/${plural}/${encodeURIComponent(id)}`, {signal: controller.signal}).then((d) => {
    if (kind === 'session') {
      const failed = d.runs.filter((r) => r.status === 'error').length;
      replace(ctx.el,
        h('div', {class: 'stats'},
          metric(t('timeline.turns'), fmt.num(d.run_count)),
          metric(t('timeline.failed'), fmt.num(failed), failed ? 'bad' : 'good'),
          metric(t('overview.tokens'), fmt.num(d.total_tokens)),
          metric(t('overview.cost'), fmt.cost(d.cost)),
          metric(t('timeline.user'), d.user_id ? h('a', {href: `/users/${encodeURIComponent(d.user_id)}`}, d.user_id) : '—')),
        h('section', {class: 'panel'}, h('header', {class: 'panel-head'}, h('h2', {}, t('timeline.conversation'))),
          h('ol', {class: 'turns', dataset: {testid: 'turns'}}, d.runs.map((r, i) => runRow(ctx, r, i)))));
    } else {
      replace(ctx.el,
        h('div', {class: 'stats'},
          metric(t('timeline.runs'), fmt.num(d.runs ?? d.run_count ?? d.recent_runs.length)),
          metric(t('timeline.failureRate'), fmt.pct(d.failure_rate), d.failure_rate > 0.05 ? 'bad' : 'good'),
          metric('p50 / p95', `${fmt.duration(d.p50_latency_ns)} / ${fmt.duration(d.p95_latency_ns)}`),
          metric(t('overview.tokens'), fmt.num(d.total_tokens)),
          metric(t('overview.cost'), fmt.cost(d.cost))),
        h('div', {class: 'muted small user-seen'}, t('timeline.seen', {first: fmt.time(d.first_seen), last: fmt.time(d.last_seen)})),
        d.feedback && d.feedback.length ? h('section', {class: 'panel'}, h('header', {class: 'panel-head'}, h('h2', {}, t('timeline.feedback'))),
          h('div', {class: 'chips'}, d.feedback.map((f) => h('span', {class: 'chip'}, typeof f === 'object' ? Object.entries(f).map(([k, v]) => `${k}: ${v}`).join(' · ') : String(f))))) : null,
        h('section', {class: 'panel'}, h('header', {class: 'panel-head'}, h('h2', {}, t('timeline.recentRuns')),
          h('a', {class: 'btn small', href: `/runs?${new URLSearchParams({q: `user_id=${api.quote(id)}`, range: '30d'})}`}, t('timeline.allRuns'))),
        h('ol', {class: 'turns', dataset: {testid: 'turns'}}, d.recent_runs.map((r, i) => runRow(ctx, r, i)))));
    }
  }).catch((e) => {
    if (e.name === 'AbortError') return;
    replace(ctx.el, h('div', {class: 'empty-state'}, h('h2', {}, e.status === 404 ? t('timeline.notFound') : t('run.failed')),
      h('p', {class: 'muted'}, e.message), openBox(kind, ctx)));
  });
  return () => controller.abort();
}

export function mount(ctx) {
  const {kind, id} = ctx.params;
  if (kind === 'sessions') return list(ctx, 'session');
  if (kind === 'users') return list(ctx, 'user');
  return one(ctx, kind, id);
}
