// Users & conversations (issue 20): conversations by app or business tag
// (abandonment, first-turn resolution, satisfaction, cost), the common turn
// paths and what came before users left, answer length / latency / cost
// against failures and satisfaction, and new vs returning users with their
// weekly retention. From POST /api/v1/analytics/{conversations,paths,
// relations,users}; docs/ANALYTICS.md has the definitions. Above them, the
// project's cost budgets (pages/budgets.js: spend against each limit, and the
// form that adds, changes and removes the console's budgets).
//
// URL: /analytics?by=tags.category&label=outcome&range=7d | &from=…&to=…
import {h, replace} from '../dom.js';
import {t, MESSAGES} from '../i18n.js';
import * as api from '../api.js';
import * as fmt from '../format.js';
import * as tr from '../timerange.js';
import * as charts from '../charts.js';
import {section, failure, empty} from '../widgets.js';
import {budgetsPanel} from './budgets.js';

Object.assign(MESSAGES.en, {
  'nav.analytics': 'Users & conversations',
  'an.title': 'Users & conversations', 'an.by': 'Group by', 'an.label': 'Name turns by',
  'an.none': '(everything)', 'an.outcome': 'outcome', 'an.app': 'app',
  'an.conversations': 'Conversations', 'an.sessions': 'Conversations', 'an.turns': 'Turns / conv.',
  'an.abandoned': 'Abandoned', 'an.resolved': 'Resolved at 1st turn', 'an.satisfaction': 'Satisfaction',
  'an.failedTurns': 'Failed turns', 'an.cost': 'Cost', 'an.tokens': 'Tokens', 'an.total': 'Total',
  'an.paths': 'Common paths', 'an.path': 'Path', 'an.beforeLeaving': 'Before users left',
  'an.relations': 'What goes with satisfaction', 'an.length': 'Answer length', 'an.latency': 'Latency',
  'an.runs': 'Runs', 'an.failed': 'Failed', 'an.likes': 'Likes', 'an.dislikes': 'Dislikes',
  'an.users': 'Users', 'an.new': 'New', 'an.returning': 'Returning', 'an.runsOf': 'Runs',
  'an.failureRate': 'Failure rate', 'an.afterFailure': 'Came back after a failure',
  'an.afterSuccess': 'Came back after success', 'an.visits': '{n} visits',
  'an.retention': 'Weekly retention by first week', 'an.week': 'Week of', 'an.noData': 'No conversations in this time range.',
  'an.noDataHint': 'Conversations are runs that carry a session id (Dify conversations, session.id, Langfuse sessionId).',
  'an.flow': 'How conversations flow', 'an.flowSub': 'the common paths, turn by turn', 'an.ended': 'ended',
});
Object.assign(MESSAGES.zh, {
  'nav.analytics': '用户与会话',
  'an.title': '用户与会话', 'an.by': '分组', 'an.label': '轮次命名',
  'an.none': '（全部）', 'an.outcome': '结果', 'an.app': '应用',
  'an.conversations': '会话', 'an.sessions': '会话数', 'an.turns': '每会话轮数',
  'an.abandoned': '流失', 'an.resolved': '首轮解决', 'an.satisfaction': '满意度',
  'an.failedTurns': '失败轮次', 'an.cost': '成本', 'an.tokens': 'Token', 'an.total': '合计',
  'an.paths': '常见路径', 'an.path': '路径', 'an.beforeLeaving': '用户离开前',
  'an.relations': '与满意度相关的因素', 'an.length': '回答长度', 'an.latency': '延迟',
  'an.runs': '运行数', 'an.failed': '失败', 'an.likes': '赞', 'an.dislikes': '踩',
  'an.users': '用户', 'an.new': '新用户', 'an.returning': '回访用户', 'an.runsOf': '运行数',
  'an.failureRate': '失败率', 'an.afterFailure': '失败后回访',
  'an.afterSuccess': '成功后回访', 'an.visits': '{n} 次访问',
  'an.retention': '按首周的每周留存', 'an.week': '首周', 'an.noData': '此时间范围内没有会话。',
  'an.noDataHint': '会话是带会话 ID 的运行（Dify 会话、session.id、Langfuse sessionId）。',
  'an.flow': '会话流向', 'an.flowSub': '常见路径，逐轮', 'an.ended': '结束',
});

const pct = (v) => (v == null ? '–' : fmt.pct(v));

function table(testid, head, rows) {
  return h('table', {class: 'table', dataset: {testid}},
    h('thead', {}, h('tr', {}, head.map((c, i) => h('th', {class: i ? 'num' : null}, c)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c, i) => h('td', {class: i ? 'num' : null}, c))))));
}

function conversations(r) {
  const line = (name, s) => [name, fmt.num(s.sessions), s.turns_per_session.toFixed(2),
    pct(s.abandonment_rate), pct(s.first_turn_resolution_rate), pct(s.satisfaction_rate),
    fmt.num(s.failed_turns), fmt.cost(s.cost), fmt.num(s.tokens)];
  const rows = r.groups.map((g) => line(g.group ?? '–', g));
  rows.push(line(t('an.total'), r.total));
  return table('conversations', [r.group_by || '', t('an.sessions'), t('an.turns'), t('an.abandoned'),
    t('an.resolved'), t('an.satisfaction'), t('an.failedTurns'), t('an.cost'), t('an.tokens')], rows);
}

function paths(list, testid) {
  return table(testid, [t('an.path'), t('an.sessions'), t('an.abandoned'), t('an.satisfaction')],
    list.map((p) => [p.path.join(' → '), fmt.num(p.sessions), pct(p.abandonment_rate), pct(p.satisfaction_rate)]));
}

function bins(title, list, testid) {
  return table(testid, [title, t('an.runs'), t('an.failed'), t('an.likes'), t('an.dislikes'), t('an.satisfaction')],
    list.map((b) => [b.label, fmt.num(b.runs), pct(b.failure_rate), fmt.num(b.likes), fmt.num(b.dislikes),
      pct(b.satisfaction_rate)]));
}

function users(u) {
  const groups = table('users', [t('an.users'), t('an.users'), t('an.runsOf'), t('an.failureRate')], [
    [t('an.new'), fmt.num(u.new.users), fmt.num(u.new.runs), pct(u.new.failure_rate)],
    [t('an.returning'), fmt.num(u.returning.users), fmt.num(u.returning.runs), pct(u.returning.failure_rate)],
  ]);
  const back = (label, c) => h('div', {class: 'stat'}, h('div', {class: 'stat-label'}, label),
    h('div', {class: 'stat-value'}, pct(c.return_rate)), h('div', {class: 'muted small'}, t('an.visits', {n: c.visits})));
  const weeks = Math.max(0, ...u.retention.map((c) => c.active.length));
  const retention = u.retention.length ? table('retention',
    [t('an.week'), t('an.users'), ...Array.from({length: weeks}, (_, k) => `W${k}`)],
    u.retention.map((c) => [fmt.time(c.week_start_ns, {seconds: false}).slice(0, 10), fmt.num(c.users),
      ...Array.from({length: weeks}, (_, k) => (k < c.active.length && c.users ? fmt.pct(c.active[k] / c.users) : ''))]))
    : null;
  return [groups,
    h('div', {class: 'stats', dataset: {testid: 'comeback'}},
      back(t('an.afterFailure'), u.after_failure), back(t('an.afterSuccess'), u.after_success)),
    retention ? h('h3', {class: 'small muted'}, t('an.retention')) : null, retention];
}

function select(name, value, options, onChange) {
  return h('select', {class: 'input', name, onchange: (e) => onChange(e.target.value)},
    options.map(([v, label]) => h('option', {value: v, selected: v === value}, label)));
}

export function mount(ctx) {
  ctx.setTitle(t('an.title'));
  let range = tr.fromParams(ctx.search, '7d');
  let by = ctx.search.get('by') || '';
  let label = ctx.search.get('label') || 'outcome';
  let tags = [];
  const out = h('div', {class: 'results'});
  let controller = null;

  function load() {
    const params = tr.toParams(range, new URLSearchParams());
    if (by) params.set('by', by);
    if (label !== 'outcome') params.set('label', label);
    history.replaceState({}, '', `/analytics?${params}`);
    const [fromNs, toNs] = tr.bounds(range);
    const window = {from: fmt.rfc3339(fromNs), to: fmt.rfc3339(toNs)};
    if (controller) controller.abort();
    controller = new AbortController();
    const signal = controller.signal;
    // Each section shows its answer as soon as it comes (at millions of
    // runs an analysis of a week takes seconds, and one that fails or times
    // out does not hide the others).
    const slot = () => h('div', {}, h('div', {class: 'skeleton tall'}));
    const box = {conversations: slot(), flow: slot(), paths: slot(), relations: slot(), users: slot()};
    replace(out,
      section('conversations', t('an.conversations'), box.conversations),
      section('flow', t('an.flow'), box.flow, {sub: t('an.flowSub')}),
      section('paths', t('an.paths'), box.paths),
      section('relations', t('an.relations'), box.relations),
      section('users', t('an.users'), box.users));
    const show = (promise, boxes, render) => promise.then((r) => {
      if (!signal.aborted) render(r);
      return r;
    }).catch((e) => {
      if (e.name !== 'AbortError') for (const b of boxes) replace(b, failure(e, t('an.title')));
      return null;
    });
    const c = show(api.post('/api/v1/analytics/conversations', by ? {...window, by} : window, {signal}),
      [box.conversations], (r) => replace(box.conversations, conversations(r)));
    const p = show(api.post('/api/v1/analytics/paths', {...window, label}, {signal}),
      [box.flow, box.paths], (r) => {
        replace(box.flow, h('div', {dataset: {testid: 'paths-flow'}},
          charts.sankey(r.paths, {endLabel: t('an.ended'), empty: t('an.noData')})));
        replace(box.paths, h('div', {class: 'grid-2'},
          paths(r.paths, 'paths'),
          h('div', {}, h('h3', {class: 'small muted'}, t('an.beforeLeaving')), paths(r.before_leaving, 'before-leaving'))));
      });
    const rel = show(api.post('/api/v1/analytics/relations', window, {signal}),
      [box.relations], (r) => replace(box.relations, h('div', {class: 'grid-3'},
        h('div', {}, bins(t('an.length'), r.answer_length, 'rel-length')),
        h('div', {}, bins(t('an.latency'), r.latency, 'rel-latency')),
        h('div', {}, bins(t('an.cost'), r.cost, 'rel-cost')))));
    const u = show(api.post('/api/v1/analytics/users', window, {signal}),
      [box.users], (r) => replace(box.users, h('div', {}, ...users(r))));
    return Promise.all([c, p, rel, u]).then(([cr, , , ur]) => {
      // Nothing at all in the window: one empty state instead of five.
      if (!signal.aborted && cr && ur && !cr.total.sessions && !ur.new.users && !ur.returning.users) {
        replace(out, empty(t('an.noData'), t('an.noDataHint')));
      }
    });
  }

  function controls() {
    const byOptions = [['', t('an.none')], ['app', t('an.app')], ...tags.map((k) => [`tags.${k}`, k])];
    const labelOptions = [['outcome', t('an.outcome')], ['app', t('an.app')], ...tags.map((k) => [`tags.${k}`, k])];
    replace(ctx.actions,
      h('label', {class: 'qb-field'}, h('span', {class: 'small muted'}, t('an.by')),
        select('by', by, byOptions, (v) => { by = v; load(); })),
      h('label', {class: 'qb-field'}, h('span', {class: 'small muted'}, t('an.label')),
        select('label', label, labelOptions, (v) => { label = v; load(); })),
      tr.picker(range, (r) => { range = r; controls(); load(); }));
  }

  // Business tags to group by: the rollup labels the server is configured with.
  api.get('/api/v1/settings').then((s) => {
    const labels = s && s.metrics && s.metrics.labels;
    tags = Array.isArray(labels) ? labels.filter((k) => /^[A-Za-z0-9_.-]+$/.test(k)) : [];
    controls();
  }).catch(() => controls());
  controls();
  const budgetBox = h('div', {});
  replace(ctx.el, budgetBox, out);
  // Budgets keep their own periods: loaded once, whatever the range, after
  // the four analyses (all heavy reads: a fifth at once would wait for a
  // read slot, `[query] max_concurrent`).
  const budgetsAbort = new AbortController();
  load().finally(() => budgetsPanel(budgetBox, {signal: budgetsAbort.signal}));
  return () => { if (controller) controller.abort(); budgetsAbort.abort(); };
}
