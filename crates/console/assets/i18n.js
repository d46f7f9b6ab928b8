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
  'overview.byApp': 'Apps', 'overview.byWorkflow': 'Workflows', 'overview.byNodeType': 'Node types', 'overview.byTool': 'Tools', 'overview.byModel': 'Models',
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
  'facet.callsNote': 'calls', 'facet.count': 'Count',

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
  'timeline.recentNote': 'The most recently active, counted over the newest {n} runs (since {since}); open one to see all its runs.',

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

  'settings.title': 'Settings', 'settings.retention': 'Retention', 'settings.thisProject': 'This project',
  'settings.globalDefault': 'Default of the server', 'settings.override': 'Project override', 'settings.noOverride': 'none',
  'settings.forever': 'kept forever', 'settings.days': '{n} days',
  'settings.retentionHint': 'Whole days past retention are dropped as files (with their rollups). Set store.retention_days and store.retention_days_by_project in loupe.toml.',
  'settings.access': 'Access', 'settings.auth': 'API keys', 'settings.keysRequired': 'required', 'settings.open': 'not required (no key exists yet)',
  'settings.signedInWith': 'Signed in with', 'settings.via.session': 'console session', 'settings.via.key': 'API key header',
  'settings.via.open': 'open access',
  'settings.keysHint': 'Admin keys manage this project\'s keys below (or `loupe keys` on the server); a secret is shown once, at creation, and never again.',
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

  'rule.new': 'New rule', 'rule.edit': 'Edit rule {name}', 'rule.editShort': 'Edit',
  'rule.configOnly': 'Defined in the config file: change it there',
  'rule.name': 'Name', 'rule.type': 'Type', 'rule.type.threshold': 'Threshold on a metric', 'rule.type.event': 'Failures in a row',
  'rule.metric': 'Metric', 'rule.metric.failure_rate': 'Failure rate', 'rule.metric.success_rate': 'Success rate',
  'rule.metric.p95_latency': 'p95 latency', 'rule.metric.avg_latency': 'Average latency', 'rule.metric.count': 'Count of spans',
  'rule.metric.tokens_sum': 'Tokens', 'rule.metric.cost_sum': 'Cost',
  'rule.op': 'Comparison', 'rule.threshold': 'Threshold', 'rule.thresholdHint': '5% or 0.05 for rates, 2s for latency',
  'rule.window': 'Over the last', 'rule.for': 'For at least', 'rule.no_data': 'Without data',
  'rule.noData.ok': 'OK (resolve)', 'rule.noData.alerting': 'Alert', 'rule.noData.keep': 'Keep the state',
  'rule.consecutive': 'Failures in a row', 'rule.within': 'Within',
  'rule.filters': 'Only spans where', 'rule.field': 'Field', 'rule.addFilter': 'Add condition',
  'rule.group_by': 'One alert per', 'rule.severity': 'Severity', 'rule.summary': 'Summary in notices',
  'rule.notify': 'Notify', 'rule.noChannels': 'No channel is configured ([[alerts.channels]] in loupe.toml).',
  'rule.preview': 'Preview', 'rule.previewHours': 'Preview range', 'rule.lastHours': 'over the last {n} h',
  'rule.save': 'Save rule', 'rule.needName': 'The rule needs a name.',
  'rule.canPreview': 'preview rules', 'rule.canSave': 'create or change rules',
  'rule.wouldNotFire': 'Would not have fired in the last {h} h.', 'rule.wouldFire': 'Would have fired {n} times in the last {h} h.',
  'rule.previewFacts': 'Resolved {resolved} times, firing at the end: {firing}. {spans} spans replayed, evaluated {evals} times (every {step}) in {ms} ms.',
  'rule.value': 'Value (worst group)', 'rule.at': 'At',
  'history.title': 'History', 'history.sub': 'notices sent, newest first, with each channel\'s and action\'s result',
  'history.none': 'No notice has been sent yet.', 'history.at': 'At', 'history.deliveries': 'Channels and actions',
  'history.reminder': 'Reminder', 'history.silenced': '(silenced)', 'history.canRead': 'read the alert history',
  'channels.title': 'Notification channels', 'channels.sub': 'defined in loupe.toml; send a test notice to check one',
  'channels.none': 'No notification channel.', 'channels.hint': 'Add [[alerts.channels]] (DingTalk, WeCom, Feishu, Slack, email, webhook, Alertmanager) to loupe.toml.',
  'channels.name': 'Name', 'channels.type': 'Type', 'channels.test': 'Send test', 'channels.sending': 'Sending…',
  'channels.sent': 'Sent ({ms} ms)', 'channels.canTest': 'send test notices', 'channels.canRead': 'list channels',
  'keys.title': 'API keys', 'keys.sub': 'this project\'s keys; secrets are stored as hashes only',
  'keys.canList': 'list keys', 'keys.canManage': 'manage keys (an admin key can)', 'keys.canCreate': 'create keys', 'keys.canRevoke': 'revoke keys',
  'keys.scope': 'Scope', 'keys.scope.ingest': 'ingest', 'keys.scope.read': 'read', 'keys.scope.admin': 'admin',
  'keys.scopeHint.ingest': 'send data only (for Dify and OTLP senders)', 'keys.scopeHint.read': 'queries, console, metrics',
  'keys.scopeHint.admin': 'everything, keys and alerting included',
  'keys.unsetScope': '(made before scopes)', 'keys.src.config': 'config file', 'keys.src.keys_json': 'keys.json',
  'keys.revoke': 'Revoke', 'keys.none': 'No key yet: Loupe is open to this machine only.',
  'keys.firstHint': 'The first key must be an admin key; once it exists, every request and this console need a key.',
  'keys.new': 'New key', 'keys.create': 'Create key', 'keys.created': 'New {scope} key created',
  'keys.onceOnly': 'Copy the secret key now: it is shown this once and cannot be shown again.',
  'keys.nowRequired': 'Keys are required from now on: sign in with this key when you close this box.',
  'keys.done': 'I have copied it', 'keys.confirmRevoke': 'Revoke the key {key}? Requests with it are refused at once.',
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
  'overview.byApp': '应用', 'overview.byWorkflow': '工作流', 'overview.byNodeType': '节点类型', 'overview.byTool': '工具', 'overview.byModel': '模型',
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
  'facet.callsNote': '调用次数', 'facet.count': '统计',

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
  'timeline.recentNote': '按最近活动排序，统计范围为最新的 {n} 次运行（自 {since} 起）；打开一项可查看其全部运行。',

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

  'settings.title': '设置', 'settings.retention': '数据保留', 'settings.thisProject': '本项目',
  'settings.globalDefault': '服务器默认值', 'settings.override': '项目单独设置', 'settings.noOverride': '无',
  'settings.forever': '永久保留', 'settings.days': '{n} 天',
  'settings.retentionHint': '超过保留期的整天数据按文件删除（连同其汇总）。在 loupe.toml 中设置 store.retention_days 和 store.retention_days_by_project。',
  'settings.access': '访问', 'settings.auth': 'API 密钥', 'settings.keysRequired': '必需', 'settings.open': '不需要（尚无密钥）',
  'settings.signedInWith': '登录方式', 'settings.via.session': '控制台会话', 'settings.via.key': 'API 密钥请求头',
  'settings.via.open': '开放访问',
  'settings.keysHint': 'admin 密钥可在下方管理本项目的密钥（或在服务器上使用 `loupe keys`）；私钥只在创建时显示一次，之后不再显示。',
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

  'rule.new': '新建规则', 'rule.edit': '编辑规则 {name}', 'rule.editShort': '编辑',
  'rule.configOnly': '定义在配置文件中：请在那里修改',
  'rule.name': '名称', 'rule.type': '类型', 'rule.type.threshold': '指标阈值', 'rule.type.event': '连续失败',
  'rule.metric': '指标', 'rule.metric.failure_rate': '失败率', 'rule.metric.success_rate': '成功率',
  'rule.metric.p95_latency': 'p95 延迟', 'rule.metric.avg_latency': '平均延迟', 'rule.metric.count': 'Span 数',
  'rule.metric.tokens_sum': 'Token 数', 'rule.metric.cost_sum': '费用',
  'rule.op': '比较', 'rule.threshold': '阈值', 'rule.thresholdHint': '比率写 5% 或 0.05，延迟写 2s',
  'rule.window': '统计最近', 'rule.for': '持续至少', 'rule.no_data': '无数据时',
  'rule.noData.ok': '正常（恢复）', 'rule.noData.alerting': '告警', 'rule.noData.keep': '保持原状态',
  'rule.consecutive': '连续失败次数', 'rule.within': '时间范围',
  'rule.filters': '仅统计满足条件的 Span', 'rule.field': '字段', 'rule.addFilter': '添加条件',
  'rule.group_by': '按此分别告警', 'rule.severity': '级别', 'rule.summary': '通知中的说明',
  'rule.notify': '通知渠道', 'rule.noChannels': '尚未配置通知渠道（loupe.toml 中的 [[alerts.channels]]）。',
  'rule.preview': '预览', 'rule.previewHours': '预览范围', 'rule.lastHours': '最近 {n} 小时',
  'rule.save': '保存规则', 'rule.needName': '规则需要名称。',
  'rule.canPreview': '预览规则', 'rule.canSave': '创建或修改规则',
  'rule.wouldNotFire': '最近 {h} 小时内不会触发。', 'rule.wouldFire': '最近 {h} 小时内会触发 {n} 次。',
  'rule.previewFacts': '恢复 {resolved} 次，结束时仍在触发：{firing}。重放 {spans} 个 Span，评估 {evals} 次（每 {step}），耗时 {ms} 毫秒。',
  'rule.value': '数值（最差分组）', 'rule.at': '时间',
  'history.title': '历史', 'history.sub': '已发送的通知（最新在前），以及每个渠道和操作的结果',
  'history.none': '还没有发送过通知。', 'history.at': '时间', 'history.deliveries': '渠道与操作',
  'history.reminder': '重复提醒', 'history.silenced': '（已静默）', 'history.canRead': '查看告警历史',
  'channels.title': '通知渠道', 'channels.sub': '在 loupe.toml 中定义；发送测试通知以检查',
  'channels.none': '没有通知渠道。', 'channels.hint': '在 loupe.toml 中添加 [[alerts.channels]]（钉钉、企业微信、飞书、Slack、邮件、Webhook、Alertmanager）。',
  'channels.name': '名称', 'channels.type': '类型', 'channels.test': '发送测试', 'channels.sending': '发送中…',
  'channels.sent': '已发送（{ms} 毫秒）', 'channels.canTest': '发送测试通知', 'channels.canRead': '查看通知渠道',
  'keys.title': 'API 密钥', 'keys.sub': '本项目的密钥；私钥只保存哈希',
  'keys.canList': '查看密钥', 'keys.canManage': '管理密钥（admin 密钥可以）', 'keys.canCreate': '创建密钥', 'keys.canRevoke': '吊销密钥',
  'keys.scope': '权限', 'keys.scope.ingest': 'ingest', 'keys.scope.read': 'read', 'keys.scope.admin': 'admin',
  'keys.scopeHint.ingest': '仅发送数据（用于 Dify 和 OTLP 发送方）', 'keys.scopeHint.read': '查询、控制台、指标',
  'keys.scopeHint.admin': '全部权限，包括密钥和告警',
  'keys.unsetScope': '（权限功能之前创建）', 'keys.src.config': '配置文件', 'keys.src.keys_json': 'keys.json',
  'keys.revoke': '吊销', 'keys.none': '还没有密钥：Loupe 仅对本机开放。',
  'keys.firstHint': '第一个密钥必须是 admin 密钥；创建后，所有请求和此控制台都需要密钥。',
  'keys.new': '新建密钥', 'keys.create': '创建密钥', 'keys.created': '已创建新的 {scope} 密钥',
  'keys.onceOnly': '请立即复制私钥：它只显示这一次，之后无法再次查看。',
  'keys.nowRequired': '从现在起需要密钥：关闭此框后请用此密钥登录。',
  'keys.done': '我已复制', 'keys.confirmRevoke': '吊销密钥 {key}？使用它的请求将立即被拒绝。',
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
