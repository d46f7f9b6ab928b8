// Every text of the console in English and Simplified Chinese. The
// browser's language decides by default; the switch is remembered.
// t('key', {name: value}) fills {name} placeholders.

const en = {
  'nav.overview': 'Overview', 'nav.runs': 'Runs', 'nav.sessions': 'Sessions', 'nav.users': 'Users',
  'nav.project': 'Project', 'nav.signOut': 'Sign out', 'nav.language': 'Language',
  'notFound.title': 'Page not found', 'notFound.body': 'There is no console page at this address.',
  'common.copy': 'Copy', 'common.unset': '(unset)',
  'status.ok': 'OK', 'status.error': 'Error', 'status.running': 'Running', 'status.unset': 'Unset',

  'login.title': 'Sign in to Loupe', 'login.subtitle': 'Use an API key of your project.',
  'login.publicKey': 'Public key', 'login.optional': 'optional', 'login.secretKey': 'Secret key',
  'login.submit': 'Sign in', 'login.invalid': 'That key is not valid: check the public and secret key.',
  'login.help': 'Create a key on the server with',

  'range.15m': 'Last 15 minutes', 'range.1h': 'Last hour', 'range.6h': 'Last 6 hours', 'range.24h': 'Last 24 hours',
  'range.7d': 'Last 7 days', 'range.30d': 'Last 30 days', 'range.lastN': 'Last {d}',
  'range.quick': 'Quick ranges', 'range.absolute': 'Absolute range', 'range.from': 'From', 'range.to': 'To', 'range.apply': 'Apply',
  'refresh.title': 'Auto refresh', 'refresh.off': 'Off', 'refresh.now': 'Refresh now',

  'chart.empty': 'No data in this time range', 'chart.clickHint': 'Click to see these runs',

  'overview.title': 'Overview', 'overview.runs': 'Runs', 'overview.successRate': 'Success rate',
  'overview.latency': 'Run latency p50', 'overview.tokens': 'Tokens', 'overview.cost': 'Cost',
  'overview.failedRuns': '{n} failed', 'overview.errorRate': 'Error rate {v}', 'overview.llmCalls': '{n} model calls',
  'overview.perCall': '{v} per call',
  'overview.runsOverTime': 'Runs', 'overview.latencyOverTime': 'Run latency', 'overview.tokensOverTime': 'Tokens',
  'overview.costOverTime': 'Cost',
  'overview.byApp': 'Apps', 'overview.byNodeType': 'Node types', 'overview.byTool': 'Tools', 'overview.byModel': 'Models',
  'overview.byTag': 'By {tag}', 'overview.failingTools': 'Top failing tools', 'overview.errorClasses': 'Error classes',
  'overview.runsErrorRate': 'runs · error rate', 'overview.spansErrorRate': 'spans · error rate',
  'overview.callsErrorRate': 'calls · error rate', 'overview.tokensCost': 'tokens · cost',
  'overview.runsSuccessRate': 'runs · success rate', 'overview.failures': 'failures',
  'overview.errPct': '{v} err', 'overview.okPct': '{v} ok', 'overview.noFailures': 'No failures in this time range',

  'query.placeholder': 'Filter, e.g. status=error tool_name=inventory duration>2s "timeout"',
  'query.label': 'Query', 'query.run': 'Run', 'query.field': 'field', 'query.tag': 'tag', 'query.keyword': 'keyword',
  'query.hint': 'Hint', 'query.apply': 'Use `{fix}`',

  'runs.title': 'Runs', 'runs.mode.runs': 'Runs', 'runs.mode.spans': 'Spans',
  'runs.export.title': 'Export', 'runs.export.csv': 'CSV', 'runs.export.jsonl': 'JSON lines', 'runs.export.parquet': 'Parquet',
  'runs.exporting': 'Exporting…', 'runs.exported': 'Exported {size} bytes',
  'runs.querySent': 'Query sent', 'runs.fixQuery': 'Fix the query to see results.',
  'runs.countRuns': 'runs', 'runs.countSpans': 'spans', 'runs.countRows': 'rows', 'runs.failedPct': '{v} failed',
  'runs.page': 'Page {n}', 'runs.newer': 'Newer', 'runs.older': 'Older',
  'runs.none': 'No runs match this query in the time range.', 'runs.noneHint': 'Widen the time range or remove a filter.',
  'runs.rootHint': 'In Runs the filter applies to each run\'s root span. Runs containing such a node:',
  'runs.col.status': 'Status', 'runs.col.app': 'App', 'runs.col.start': 'Start', 'runs.col.duration': 'Duration',
  'runs.col.tokens': 'Tokens', 'runs.col.cost': 'Cost', 'runs.col.user': 'User', 'runs.col.session': 'Session',
  'runs.col.error': 'Error', 'runs.col.name': 'Name', 'runs.col.kind': 'Type',

  'facet.status': 'Status', 'facet.app': 'App', 'facet.nodeType': 'Node type', 'facet.tool': 'Tool', 'facet.model': 'Model',
  'facet.none': 'No values', 'facet.containsNote': 'runs containing', 'facet.unavailable': 'Not with run has',

  'run.title': 'Run', 'run.notFound': 'Run not found', 'run.failed': 'Could not load', 'run.back': 'Back to runs',
  'run.started': 'Started', 'run.duration': 'Duration', 'run.spans': 'Spans', 'run.tokens': 'Tokens', 'run.cost': 'Cost',
  'run.user': 'User', 'run.session': 'Session', 'run.source': 'Source', 'run.tags': 'Tags',
  'run.failedAt': 'Failed at {node}', 'run.findSpan': 'Find a span…', 'run.expandAll': 'Expand all',
  'run.collapseAll': 'Collapse', 'run.spanCount': '{n} spans', 'run.span': 'Span', 'run.toggle': 'Expand or collapse',
  'run.error': 'Error', 'run.noMessage': '(no message)', 'run.offset': 'Offset', 'run.model': 'Model', 'run.tool': 'Tool',
  'run.rawStatus': 'Source status', 'run.spanId': 'Span id', 'run.parent': 'Parent', 'run.input': 'Input',
  'run.output': 'Output', 'run.attributes': 'Attributes',

  'json.items': '{n} items', 'json.keys': '{n} keys', 'json.none': '(empty)', 'json.showAll': 'show all {n} characters',

  'timeline.session': 'Session', 'timeline.user': 'User', 'timeline.sessionId': 'Open a session id…',
  'timeline.userId': 'Open a user id…', 'timeline.open': 'Open', 'timeline.runs': 'Runs', 'timeline.turns': 'Turns',
  'timeline.failed': 'Failed', 'timeline.failureRate': 'Failure rate', 'timeline.tokens': 'tokens',
  'timeline.lastSeen': 'Last seen', 'timeline.conversation': 'Conversation', 'timeline.recentRuns': 'Recent runs',
  'timeline.allRuns': 'All runs of this user', 'timeline.feedback': 'Feedback', 'timeline.notFound': 'Nothing found',
  'timeline.seen': 'First seen {first} · last seen {last}', 'timeline.noSessions': 'No sessions in this time range.',
  'timeline.noUsers': 'No users in this time range.',
};

const zh = {
  'nav.overview': '概览', 'nav.runs': '运行记录', 'nav.sessions': '会话', 'nav.users': '用户',
  'nav.project': '项目', 'nav.signOut': '退出登录', 'nav.language': '语言',
  'notFound.title': '页面不存在', 'notFound.body': '此地址没有控制台页面。',
  'common.copy': '复制', 'common.unset': '（未设置）',
  'status.ok': '成功', 'status.error': '失败', 'status.running': '运行中', 'status.unset': '未知',

  'login.title': '登录 Loupe', 'login.subtitle': '使用项目的 API 密钥登录。',
  'login.publicKey': '公钥', 'login.optional': '可选', 'login.secretKey': '私钥',
  'login.submit': '登录', 'login.invalid': '密钥无效：请检查公钥和私钥。',
  'login.help': '在服务器上创建密钥：',

  'range.15m': '最近 15 分钟', 'range.1h': '最近 1 小时', 'range.6h': '最近 6 小时', 'range.24h': '最近 24 小时',
  'range.7d': '最近 7 天', 'range.30d': '最近 30 天', 'range.lastN': '最近 {d}',
  'range.quick': '快速选择', 'range.absolute': '绝对时间', 'range.from': '开始', 'range.to': '结束', 'range.apply': '应用',
  'refresh.title': '自动刷新', 'refresh.off': '关闭', 'refresh.now': '立即刷新',

  'chart.empty': '此时间范围内没有数据', 'chart.clickHint': '点击查看这些运行',

  'overview.title': '概览', 'overview.runs': '运行次数', 'overview.successRate': '成功率',
  'overview.latency': '运行耗时 p50', 'overview.tokens': 'Token 用量', 'overview.cost': '费用',
  'overview.failedRuns': '失败 {n} 次', 'overview.errorRate': '错误率 {v}', 'overview.llmCalls': '模型调用 {n} 次',
  'overview.perCall': '每次调用 {v}',
  'overview.runsOverTime': '运行次数', 'overview.latencyOverTime': '运行耗时', 'overview.tokensOverTime': 'Token 用量',
  'overview.costOverTime': '费用',
  'overview.byApp': '应用', 'overview.byNodeType': '节点类型', 'overview.byTool': '工具', 'overview.byModel': '模型',
  'overview.byTag': '按 {tag}', 'overview.failingTools': '失败最多的工具', 'overview.errorClasses': '错误类型',
  'overview.runsErrorRate': '运行次数 · 错误率', 'overview.spansErrorRate': '节点数 · 错误率',
  'overview.callsErrorRate': '调用次数 · 错误率', 'overview.tokensCost': 'Token · 费用',
  'overview.runsSuccessRate': '运行次数 · 成功率', 'overview.failures': '失败次数',
  'overview.errPct': '错误 {v}', 'overview.okPct': '成功 {v}', 'overview.noFailures': '此时间范围内没有失败',

  'query.placeholder': '筛选条件，例如 status=error tool_name=inventory duration>2s "timeout"',
  'query.label': '查询', 'query.run': '查询', 'query.field': '字段', 'query.tag': '标签', 'query.keyword': '关键字',
  'query.hint': '提示', 'query.apply': '改为 `{fix}`',

  'runs.title': '运行记录', 'runs.mode.runs': '运行', 'runs.mode.spans': '节点',
  'runs.export.title': '导出', 'runs.export.csv': 'CSV', 'runs.export.jsonl': 'JSON Lines', 'runs.export.parquet': 'Parquet',
  'runs.exporting': '正在导出…', 'runs.exported': '已导出 {size} 字节',
  'runs.querySent': '实际查询', 'runs.fixQuery': '请修正查询后查看结果。',
  'runs.countRuns': '次运行', 'runs.countSpans': '个节点', 'runs.countRows': '行', 'runs.failedPct': '失败 {v}',
  'runs.page': '第 {n} 页', 'runs.newer': '较新', 'runs.older': '较早',
  'runs.none': '此时间范围内没有符合查询的运行。', 'runs.noneHint': '请扩大时间范围或删除筛选条件。',
  'runs.rootHint': '“运行”模式下筛选条件作用于每次运行的根节点。查找包含此类节点的运行：',
  'runs.col.status': '状态', 'runs.col.app': '应用', 'runs.col.start': '开始时间', 'runs.col.duration': '耗时',
  'runs.col.tokens': 'Token', 'runs.col.cost': '费用', 'runs.col.user': '用户', 'runs.col.session': '会话',
  'runs.col.error': '错误', 'runs.col.name': '名称', 'runs.col.kind': '类型',

  'facet.status': '状态', 'facet.app': '应用', 'facet.nodeType': '节点类型', 'facet.tool': '工具', 'facet.model': '模型',
  'facet.none': '无', 'facet.containsNote': '包含它的运行', 'facet.unavailable': '与 run has 不可同用',

  'run.title': '运行', 'run.notFound': '找不到该运行', 'run.failed': '加载失败', 'run.back': '返回运行记录',
  'run.started': '开始时间', 'run.duration': '耗时', 'run.spans': '节点数', 'run.tokens': 'Token', 'run.cost': '费用',
  'run.user': '用户', 'run.session': '会话', 'run.source': '来源', 'run.tags': '标签',
  'run.failedAt': '失败于 {node}', 'run.findSpan': '查找节点…', 'run.expandAll': '全部展开',
  'run.collapseAll': '折叠', 'run.spanCount': '共 {n} 个节点', 'run.span': '节点', 'run.toggle': '展开或折叠',
  'run.error': '错误', 'run.noMessage': '（无错误信息）', 'run.offset': '相对开始', 'run.model': '模型', 'run.tool': '工具',
  'run.rawStatus': '原始状态', 'run.spanId': '节点 ID', 'run.parent': '父节点', 'run.input': '输入',
  'run.output': '输出', 'run.attributes': '属性',

  'json.items': '{n} 项', 'json.keys': '{n} 个键', 'json.none': '（空）', 'json.showAll': '显示全部 {n} 个字符',

  'timeline.session': '会话', 'timeline.user': '用户', 'timeline.sessionId': '输入会话 ID…',
  'timeline.userId': '输入用户 ID…', 'timeline.open': '打开', 'timeline.runs': '运行次数', 'timeline.turns': '轮次',
  'timeline.failed': '失败', 'timeline.failureRate': '失败率', 'timeline.tokens': 'Token',
  'timeline.lastSeen': '最近活动', 'timeline.conversation': '对话', 'timeline.recentRuns': '最近运行',
  'timeline.allRuns': '该用户的全部运行', 'timeline.feedback': '反馈', 'timeline.notFound': '未找到',
  'timeline.seen': '首次出现 {first} · 最近出现 {last}', 'timeline.noSessions': '此时间范围内没有会话。',
  'timeline.noUsers': '此时间范围内没有用户。',
};

export const MESSAGES = {en, zh};
const KEY = 'loupe.lang';
let current = null;

function detect() {
  try {
    const saved = localStorage.getItem(KEY);
    if (saved === 'en' || saved === 'zh') return saved;
  } catch { /* storage blocked */ }
  const langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || 'en'];
  for (const l of langs) {
    const low = String(l).toLowerCase();
    if (low.startsWith('zh')) return 'zh';
    if (low.startsWith('en')) return 'en';
  }
  return 'en';
}

export function lang() {
  if (!current) current = detect();
  return current;
}

export function setLang(l) {
  current = l === 'zh' ? 'zh' : 'en';
  try { localStorage.setItem(KEY, current); } catch { /* storage blocked */ }
}

export function t(key, vars) {
  const table = MESSAGES[lang()];
  let text = table[key] ?? en[key];
  if (text == null) {
    // A relative range the picker does not list.
    if (key.startsWith('range.')) return (table['range.lastN'] || en['range.lastN']).replace('{d}', key.slice(6));
    return key;
  }
  if (vars) for (const [k, v] of Object.entries(vars)) text = text.replaceAll(`{${k}}`, v);
  return text;
}
