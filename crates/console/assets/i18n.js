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

  'nav.alerts': 'Alerts', 'nav.dify': 'Dify', 'nav.settings': 'Settings',
  'common.denied': 'This key cannot {what}.',
  'overview.estimated': 'p50 · p95, estimated from histograms',

  'alerts.title': 'Alerts', 'alerts.active': 'Alerts', 'alerts.rules': 'Rules', 'alerts.silences': 'Silences',
  'alerts.filter': 'Show alerts', 'alerts.all': 'All', 'alerts.phase.firing': 'Firing', 'alerts.phase.pending': 'Pending',
  'alerts.phase.resolved': 'Resolved', 'alerts.ok': 'OK', 'alerts.state': 'State', 'alerts.rule': 'Rule', 'alerts.group': 'Group',
  'alerts.value': 'Value', 'alerts.since': 'Since', 'alerts.fired': 'Fired', 'alerts.resolved': 'Resolved', 'alerts.actions': 'Actions',
  'alerts.silence': 'Silence', 'alerts.condition': 'Condition', 'alerts.filters': 'Filters', 'alerts.groupBy': 'Group by',
  'alerts.severity': 'Severity', 'alerts.notify': 'Notifies', 'alerts.source': 'Defined in', 'alerts.src.config': 'config file',
  'alerts.src.api': 'API', 'alerts.delete': 'Delete', 'alerts.confirmDelete': 'Delete the rule "{name}"?',
  'alerts.eventCondition': '{n} failures in a row within {within}', 'alerts.over': 'over {w}', 'alerts.for': 'for {d}',
  'alerts.noAlerts': 'Nothing is firing or pending. Resolved alerts show here until the next evaluation.',
  'alerts.noneInPhase': 'No alert in this state.', 'alerts.noRules': 'No alert rules yet.',
  'alerts.rulesHint': 'Add rules under [alerts] in loupe.toml or with POST /api/v1/alerts/rules (docs/ALERTS.md).',
  'alerts.noSilences': 'No silences.', 'alerts.matchers': 'Matchers', 'alerts.ends': 'Ends', 'alerts.createdBy': 'Created by',
  'alerts.comment': 'Comment', 'alerts.expire': 'Expire', 'alerts.scheduled': 'Scheduled', 'alerts.activeSilence': 'Active',
  'alerts.newSilence': 'New silence', 'alerts.label': 'Label', 'alerts.matchValue': 'Value (!value: must not match)',
  'alerts.removeMatcher': 'Remove this matcher', 'alerts.addMatcher': 'Add matcher', 'alerts.duration': 'Duration',
  'alerts.forDuration': 'for {d}', 'alerts.createSilence': 'Create silence', 'alerts.cancel': 'Cancel',
  'alerts.needPositive': 'A silence needs at least one matcher with a value that must match (not starting with !).',
  'alerts.disabled': 'Alerting is not enabled on this server.',
  'alerts.disabledHint': 'Set enabled = true under [alerts] in loupe.toml, add channels and rules (docs/ALERTS.md), and restart.',
  'alerts.canReadAlerts': 'read alerts', 'alerts.canReadRules': 'read alert rules', 'alerts.canReadSilences': 'read silences',
  'alerts.canCreateSilence': 'create silences', 'alerts.canExpire': 'expire silences', 'alerts.canDeleteRule': 'delete rules',

  'dify.title': 'Dify', 'dify.sync': 'Database sync', 'dify.notConfigured': 'No Dify database is synced into this project.',
  'dify.configHint': 'Point [dify] in loupe.toml at Dify\'s PostgreSQL (read-only is enough) and restart loupe serve:',
  'dify.status': 'Sync', 'dify.st.ok': 'Up to date', 'dify.st.behind': 'Behind', 'dify.st.failing': 'Failing',
  'dify.st.starting': 'First pass running', 'dify.st.stopped': 'Not running', 'dify.every': 'a pass every {d}',
  'dify.lag': 'Lag', 'dify.never': 'never', 'dify.rows': 'Rows read', 'dify.spansWritten': '{n} spans written',
  'dify.openRuns': 'Open runs', 'dify.openHint': 're-polled until they settle', 'dify.skippedTotal': 'Skipped',
  'dify.skippedHint': 'older than retention ({mode})', 'dify.lastPass': 'Last pass', 'dify.ended': 'Ended', 'dify.took': 'Took',
  'dify.spans': 'Spans written', 'dify.table': 'Table', 'dify.rowsRead': 'Rows read', 'dify.skipped': 'Skipped (retention)',
  'dify.nothingRead': 'Nothing new in the last pass.', 'dify.sinceStart': 'Since the server started', 'dify.passes': 'Passes',
  'dify.failures': 'Failed passes', 'dify.lastError': 'Last error', 'dify.project': 'Project', 'dify.batch': 'Rows per batch',
  'dify.olderThanRetention': 'History older than retention', 'dify.storage': 'Offloaded payloads',
  'dify.storageOn': 'read from Dify\'s storage', 'dify.storageOff': 'marked truncated (no storage_dir)', 'dify.webUrl': 'Dify console',
  'dify.cleanup': 'Cleaning Dify\'s database',
  'dify.cleanupText': 'Loupe deletes old execution rows from Dify\'s database only after verifying, batch by batch, that it holds them (counts and checksums), in small batches with a lock timeout, throttled by the database\'s latency. Run it from the server, dry run first:',
  'dify.cleanupHint': 'The report lists every batch; an interrupted cleanup resumes with the same command (docs/DIFY.md).',
  'dify.canRead': 'read the Dify sync status',
  'dify.h.title': 'Database health', 'dify.h.canRead': 'read the Dify database\'s health', 'dify.h.noSample': 'No sample of the database yet.',
  'dify.h.database': 'database', 'dify.h.noHistory': 'No samples in this window yet.', 'dify.h.dbSize': 'Database size',
  'dify.h.growth': '{v} per day', 'dify.h.nodesSize': 'Node executions', 'dify.h.projected': 'In 90 days', 'dify.h.in30': 'in 30 days {v}',
  'dify.h.freedTotal': 'Freed by cleanups', 'dify.h.lastCleanup': 'last cleanup {when}', 'dify.h.noCleanupYet': 'no cleanup yet',
  'dify.h.lockWaits': 'Lock waits', 'dify.h.longQueries': '{n} long-running queries', 'dify.h.active': 'active sessions',
  'dify.h.recommend': 'A cleanup of {table} older than {days} days would free ≈ {v} (≈ {rows} rows, estimated as the dry run estimates).',
  'dify.h.recommendHint': 'Sync first; the dry run verifies every batch against Loupe and reports what it would delete. PostgreSQL reuses the space after (auto)VACUUM.',
  'dify.h.growthTitle': 'Size over time', 'dify.h.samples': '{n} samples, one every {every}',
  'dify.h.corrTitle': 'Workflow latency vs the database', 'dify.h.corrSub': 'workflow p95 (Loupe) · database probe, lock waits, active sessions (samples)',
  'dify.h.p95': 'workflow p95', 'dify.h.probe': 'probe latency (ms)', 'dify.h.readLatency': 'read workflow latency',
  'dify.h.p95Axis': 'Workflow p95', 'dify.h.dbAxis': 'Database: probe latency (ms), lock waits, active sessions',
  'dify.h.tablesTitle': 'Tables', 'dify.h.total': 'Total', 'dify.h.heap': 'Heap', 'dify.h.toast': 'TOAST', 'dify.h.indexes': 'Indexes',
  'dify.h.rows': 'Rows', 'dify.h.dead': 'Dead', 'dify.h.autovacuum': 'Last vacuum', 'dify.h.oldest': 'Oldest row', 'dify.h.perDay': 'Growth/day',
  'dify.h.in90': 'In 90 days', 'dify.h.loadTitle': 'Load on the execution tables', 'dify.h.sessions': 'Sessions',
  'dify.h.waiting': '{n} sessions wait for a lock on {table} (longest {s} s)', 'dify.h.noLockWaits': 'No lock waits on the execution tables.',
  'dify.h.noLongQueries': 'No long-running queries on the execution tables.', 'dify.h.cleanupsTitle': 'Cleanups',
  'dify.h.cleanupsSub': '{n} rows deleted, ≈ {v} freed', 'dify.h.noCleanups': 'No cleanup recorded yet.',
  'dify.h.noCleanupsHint': 'Every run of loupe dify cleanup (dry runs too) is recorded here.', 'dify.h.started': 'Started',
  'dify.h.source': 'From', 'dify.h.scope': 'Scope', 'dify.h.rowsDeleted': 'Rows', 'dify.h.freed': 'Freed', 'dify.h.took': 'Took',
  'dify.h.skipped': 'Skipped', 'dify.h.latency': 'DB probe (before → p95)', 'dify.h.dry': 'dry run',

  'settings.title': 'Settings', 'settings.retention': 'Retention', 'settings.thisProject': 'This project',
  'settings.globalDefault': 'Default of the server', 'settings.override': 'Project override', 'settings.noOverride': 'none',
  'settings.forever': 'kept forever', 'settings.days': '{n} days',
  'settings.retentionHint': 'Whole days past retention are dropped as files (with their rollups). Set store.retention_days and store.retention_days_by_project in loupe.toml.',
  'settings.access': 'Access', 'settings.auth': 'API keys', 'settings.keysRequired': 'required', 'settings.open': 'not required (no key exists yet)',
  'settings.signedInWith': 'Signed in with', 'settings.via.session': 'console session', 'settings.via.key': 'API key header',
  'settings.via.open': 'open access',
  'settings.keysHint': 'Keys are managed on the server; a secret is shown once, at creation. This console never shows secrets.',
  'settings.tagRules': 'Tag rules', 'settings.tagRulesSub': 'business tags extracted from every source',
  'settings.tag': 'Tag', 'settings.from': 'From', 'settings.path': 'Path', 'settings.regex': 'Regex', 'settings.scope': 'Applies to',
  'settings.isLabel': 'Metrics label', 'settings.allProjects': 'all projects', 'settings.yes': 'yes', 'settings.no': 'no',
  'settings.noRules': 'No tag rules.', 'settings.rulesHint': 'Add [[tags]] rules in loupe.toml (name, from = "input" or "attribute", path).',
  'settings.metrics': 'Metrics and rollups', 'settings.maxSeries': 'Series per app at most', 'settings.minutesKept': 'Minutes of per-minute rollups',
  'settings.fromRollups': 'Aggregates answered from rollups',
  'settings.labelsHint': 'These tags are rollup dimensions and Prometheus labels: dashboards and alerts group by them in milliseconds ([metrics] labels).',
  'settings.integrations': 'Integrations', 'settings.alerting': 'Alerting', 'settings.difySync': 'Dify sync',
  'settings.difyWeb': 'Dify console links', 'settings.enabled': 'enabled', 'settings.disabled': 'not enabled',
  'settings.configHint': 'Settings live in loupe.toml (see loupe.example.toml); the server reads it at start.',
  'settings.canRead': 'read the settings',
  'run.dify': 'Dify', 'run.openInDify': 'App logs in Dify', 'run.loadFull': 'Load all {size}',
  'run.cutNote': 'the first {shown} shown',
  'settings.publicKey': 'Public key', 'settings.created': 'Created', 'settings.keySource': 'Defined in',
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

  'nav.alerts': '告警', 'nav.dify': 'Dify', 'nav.settings': '设置',
  'common.denied': '此密钥无权{what}。',
  'overview.estimated': 'p50 · p95，由直方图估算',

  'alerts.title': '告警', 'alerts.active': '告警', 'alerts.rules': '规则', 'alerts.silences': '静默',
  'alerts.filter': '显示告警', 'alerts.all': '全部', 'alerts.phase.firing': '触发中', 'alerts.phase.pending': '待定',
  'alerts.phase.resolved': '已恢复', 'alerts.ok': '正常', 'alerts.state': '状态', 'alerts.rule': '规则', 'alerts.group': '分组',
  'alerts.value': '数值', 'alerts.since': '开始于', 'alerts.fired': '触发时间', 'alerts.resolved': '恢复时间', 'alerts.actions': '操作',
  'alerts.silence': '静默', 'alerts.condition': '条件', 'alerts.filters': '过滤', 'alerts.groupBy': '分组依据',
  'alerts.severity': '级别', 'alerts.notify': '通知', 'alerts.source': '定义于', 'alerts.src.config': '配置文件',
  'alerts.src.api': 'API', 'alerts.delete': '删除', 'alerts.confirmDelete': '删除规则“{name}”？',
  'alerts.eventCondition': '{within} 内连续失败 {n} 次', 'alerts.over': '统计 {w}', 'alerts.for': '持续 {d}',
  'alerts.noAlerts': '当前没有触发中或待定的告警。已恢复的告警会显示到下一次评估为止。',
  'alerts.noneInPhase': '没有处于此状态的告警。', 'alerts.noRules': '还没有告警规则。',
  'alerts.rulesHint': '在 loupe.toml 的 [alerts] 中添加规则，或使用 POST /api/v1/alerts/rules（见 docs/ALERTS.md）。',
  'alerts.noSilences': '没有静默。', 'alerts.matchers': '匹配条件', 'alerts.ends': '结束时间', 'alerts.createdBy': '创建人',
  'alerts.comment': '备注', 'alerts.expire': '使其失效', 'alerts.scheduled': '计划中', 'alerts.activeSilence': '生效中',
  'alerts.newSilence': '新建静默', 'alerts.label': '标签', 'alerts.matchValue': '值（!值 表示不匹配）',
  'alerts.removeMatcher': '移除此条件', 'alerts.addMatcher': '添加条件', 'alerts.duration': '时长',
  'alerts.forDuration': '持续 {d}', 'alerts.createSilence': '创建静默', 'alerts.cancel': '取消',
  'alerts.needPositive': '静默至少需要一个必须匹配的条件（值不以 ! 开头）。',
  'alerts.disabled': '此服务器未启用告警。',
  'alerts.disabledHint': '在 loupe.toml 的 [alerts] 中设置 enabled = true，添加通知渠道和规则（见 docs/ALERTS.md），然后重启。',
  'alerts.canReadAlerts': '查看告警', 'alerts.canReadRules': '查看告警规则', 'alerts.canReadSilences': '查看静默',
  'alerts.canCreateSilence': '创建静默', 'alerts.canExpire': '使静默失效', 'alerts.canDeleteRule': '删除规则',

  'dify.title': 'Dify', 'dify.sync': '数据库同步', 'dify.notConfigured': '此项目没有同步 Dify 数据库。',
  'dify.configHint': '在 loupe.toml 的 [dify] 中填写 Dify 的 PostgreSQL（只读权限即可），然后重启 loupe serve：',
  'dify.status': '同步', 'dify.st.ok': '已是最新', 'dify.st.behind': '落后', 'dify.st.failing': '失败',
  'dify.st.starting': '首次同步进行中', 'dify.st.stopped': '未运行', 'dify.every': '每 {d} 同步一次',
  'dify.lag': '延迟', 'dify.never': '从未', 'dify.rows': '已读取行数', 'dify.spansWritten': '已写入 {n} 个节点',
  'dify.openRuns': '未结束的运行', 'dify.openHint': '持续轮询直到稳定', 'dify.skippedTotal': '已跳过',
  'dify.skippedHint': '早于保留期（{mode}）', 'dify.lastPass': '最近一次同步', 'dify.ended': '结束于', 'dify.took': '耗时',
  'dify.spans': '写入节点数', 'dify.table': '表', 'dify.rowsRead': '读取行数', 'dify.skipped': '跳过（保留期）',
  'dify.nothingRead': '最近一次同步没有新数据。', 'dify.sinceStart': '自服务器启动以来', 'dify.passes': '同步次数',
  'dify.failures': '失败次数', 'dify.lastError': '最近错误', 'dify.project': '项目', 'dify.batch': '每批行数',
  'dify.olderThanRetention': '早于保留期的历史', 'dify.storage': '外存的载荷',
  'dify.storageOn': '从 Dify 存储读取', 'dify.storageOff': '标记为已截断（未设置 storage_dir）', 'dify.webUrl': 'Dify 控制台',
  'dify.cleanup': '清理 Dify 数据库',
  'dify.cleanupText': 'Loupe 只在逐批核实（行数与校验和）已保存这些数据之后，才从 Dify 数据库删除旧的执行记录；小批量、带锁超时，并根据数据库延迟自动限速。请在服务器上运行，先试运行：',
  'dify.cleanupHint': '报告列出每一批；中断的清理用同一命令即可继续（见 docs/DIFY.md）。',
  'dify.canRead': '查看 Dify 同步状态',
  'dify.h.title': '数据库健康', 'dify.h.canRead': '查看 Dify 数据库健康状况', 'dify.h.noSample': '尚未采集数据库样本。',
  'dify.h.database': '数据库', 'dify.h.noHistory': '此时间范围内还没有样本。', 'dify.h.dbSize': '数据库大小',
  'dify.h.growth': '每天 {v}', 'dify.h.nodesSize': '节点执行表', 'dify.h.projected': '90 天后', 'dify.h.in30': '30 天后 {v}',
  'dify.h.freedTotal': '清理已释放', 'dify.h.lastCleanup': '最近一次清理 {when}', 'dify.h.noCleanupYet': '尚未清理',
  'dify.h.lockWaits': '锁等待', 'dify.h.longQueries': '{n} 个长时间运行的查询', 'dify.h.active': '活跃会话',
  'dify.h.recommend': '清理 {days} 天前的 {table} 约可释放 {v}（约 {rows} 行，与试运行的估算方法相同）。',
  'dify.h.recommendHint': '请先同步；试运行会逐批与 Loupe 核对，并报告将删除的内容。PostgreSQL 在 (auto)VACUUM 之后复用空间。',
  'dify.h.growthTitle': '大小变化', 'dify.h.samples': '{n} 个样本，每 {every} 一次',
  'dify.h.corrTitle': '工作流延迟与数据库', 'dify.h.corrSub': '工作流 p95（Loupe）· 数据库探测延迟、锁等待、活跃会话（样本）',
  'dify.h.p95': '工作流 p95', 'dify.h.probe': '探测延迟（毫秒）', 'dify.h.readLatency': '读取工作流延迟',
  'dify.h.p95Axis': '工作流 p95', 'dify.h.dbAxis': '数据库：探测延迟（毫秒）、锁等待、活跃会话',
  'dify.h.tablesTitle': '表', 'dify.h.total': '总计', 'dify.h.heap': '堆', 'dify.h.toast': 'TOAST', 'dify.h.indexes': '索引',
  'dify.h.rows': '行数', 'dify.h.dead': '死元组', 'dify.h.autovacuum': '最近清理', 'dify.h.oldest': '最早的行', 'dify.h.perDay': '每日增长',
  'dify.h.in90': '90 天后', 'dify.h.loadTitle': '执行表上的负载', 'dify.h.sessions': '会话',
  'dify.h.waiting': '{n} 个会话在等待 {table} 上的锁（最长 {s} 秒）', 'dify.h.noLockWaits': '执行表上没有锁等待。',
  'dify.h.noLongQueries': '执行表上没有长时间运行的查询。', 'dify.h.cleanupsTitle': '清理记录',
  'dify.h.cleanupsSub': '已删除 {n} 行，约释放 {v}', 'dify.h.noCleanups': '尚无清理记录。',
  'dify.h.noCleanupsHint': '每次运行 loupe dify cleanup（包括试运行）都会记录在这里。', 'dify.h.started': '开始于',
  'dify.h.source': '来源', 'dify.h.scope': '范围', 'dify.h.rowsDeleted': '行数', 'dify.h.freed': '释放', 'dify.h.took': '耗时',
  'dify.h.skipped': '跳过', 'dify.h.latency': '数据库探测（之前 → p95）', 'dify.h.dry': '试运行',

  'settings.title': '设置', 'settings.retention': '数据保留', 'settings.thisProject': '本项目',
  'settings.globalDefault': '服务器默认值', 'settings.override': '项目单独设置', 'settings.noOverride': '无',
  'settings.forever': '永久保留', 'settings.days': '{n} 天',
  'settings.retentionHint': '超过保留期的整天数据按文件删除（连同其汇总）。在 loupe.toml 中设置 store.retention_days 和 store.retention_days_by_project。',
  'settings.access': '访问', 'settings.auth': 'API 密钥', 'settings.keysRequired': '必需', 'settings.open': '不需要（尚无密钥）',
  'settings.signedInWith': '登录方式', 'settings.via.session': '控制台会话', 'settings.via.key': 'API 密钥请求头',
  'settings.via.open': '开放访问',
  'settings.keysHint': '密钥在服务器上管理；密钥只在创建时显示一次。此控制台从不显示密钥。',
  'settings.tagRules': '标签规则', 'settings.tagRulesSub': '从所有来源提取的业务标签',
  'settings.tag': '标签', 'settings.from': '来源', 'settings.path': '路径', 'settings.regex': '正则', 'settings.scope': '适用范围',
  'settings.isLabel': '指标标签', 'settings.allProjects': '所有项目', 'settings.yes': '是', 'settings.no': '否',
  'settings.noRules': '没有标签规则。', 'settings.rulesHint': '在 loupe.toml 中添加 [[tags]] 规则（name、from = "input" 或 "attribute"、path）。',
  'settings.metrics': '指标与汇总', 'settings.maxSeries': '每个应用最多序列数', 'settings.minutesKept': '分钟级汇总保留分钟数',
  'settings.fromRollups': '聚合查询由汇总回答',
  'settings.labelsHint': '这些标签是汇总维度和 Prometheus 标签：看板和告警按它们分组只需毫秒（[metrics] labels）。',
  'settings.integrations': '集成', 'settings.alerting': '告警', 'settings.difySync': 'Dify 同步',
  'settings.difyWeb': 'Dify 控制台链接', 'settings.enabled': '已启用', 'settings.disabled': '未启用',
  'settings.configHint': '设置保存在 loupe.toml 中（见 loupe.example.toml）；服务器启动时读取。',
  'settings.canRead': '查看设置',
  'run.dify': 'Dify', 'run.openInDify': '在 Dify 中查看应用日志', 'run.loadFull': '加载全部 {size}',
  'run.cutNote': '仅显示前 {shown}',
  'settings.publicKey': '公钥', 'settings.created': '创建时间', 'settings.keySource': '定义于',
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
