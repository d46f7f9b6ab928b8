// The console's only door to the server: the same HTTP API every client
// uses. The session cookie (HttpOnly) travels by itself; the console
// header marks the console's requests (needed for unsafe methods).

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

const HEADERS = {'x-loupe-console': '1'};

// Integers beyond 2^53 (ns timestamps) come back as digit strings, exact,
// where the browser gives JSON.parse the source text.
function reviver(_key, value, context) {
  if (typeof value === 'number' && !Number.isSafeInteger(value) && Number.isInteger(value)
      && context && typeof context.source === 'string' && /^-?\d+$/.test(context.source)) {
    return {exact: context.source, value};
  }
  return value;
}

async function send(method, path, body, {signal, exact = false} = {}) {
  const init = {method, headers: {...HEADERS}, credentials: 'same-origin', signal};
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let data = null;
  if (text) {
    try {
      data = exact ? JSON.parse(text, reviver) : JSON.parse(text);
    } catch {
      data = {error: text};
    }
  }
  if (!resp.ok) {
    if (resp.status === 401) window.dispatchEvent(new CustomEvent('loupe:unauthorized'));
    throw new ApiError(resp.status, data);
  }
  return data;
}

export const get = (path, opts) => send('GET', path, undefined, opts);
export const post = (path, body, opts) => send('POST', path, body, opts);
export const del = (path, opts) => send('DELETE', path, undefined, opts);
export const put = (path, body, opts) => send('PUT', path, body, opts);

// Runs a query; returns {columns, rows (objects by column name), stats, exact}
// where exact[i][col] is the exact ns digit string of timestamp columns.
// approx: duration percentiles may come from the rollups' histograms.
export async function query(q, {now, signal, approx = false} = {}) {
  const body = {q};
  if (now != null) body.now = now;
  if (approx) body.approx_percentiles = true;
  const data = await send('POST', '/api/v1/query', body, {signal, exact: true});
  const cols = data.columns.map((c) => c.name);
  const exact = [];
  const rows = data.rows.map((r) => {
    const o = {};
    const e = {};
    r.forEach((v, i) => {
      if (v && typeof v === 'object' && 'exact' in v && Object.keys(v).length === 2) {
        e[cols[i]] = v.exact;
        v = v.value;
      } else if (typeof v === 'number' && Number.isInteger(v)) {
        e[cols[i]] = String(v);
      }
      o[cols[i]] = v;
    });
    exact.push(e);
    return o;
  });
  return {columns: data.columns, rows, stats: data.stats || {}, exact};
}

// Downloads the whole answer of a query as csv, jsonl or parquet.
export async function download(q, format, {now, filename} = {}) {
  const body = {q};
  if (now != null) body.now = now;
  const resp = await fetch(`/api/v1/query?format=${encodeURIComponent(format)}`, {
    method: 'POST', credentials: 'same-origin',
    headers: {...HEADERS, 'content-type': 'application/json'},
    body: JSON.stringify(body),
  });
  if (!resp.ok) {
    let data = null;
    try { data = await resp.json(); } catch { /* not JSON */ }
    throw new ApiError(resp.status, data);
  }
  const blob = await resp.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename || `loupe-export.${format}`;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return blob.size;
}

// Quotes a value for the query language when it is not a plain word.
const KEYWORDS = new Set(['and', 'or', 'not', 'in', 'contains', 'exists', 'last', 'from', 'to', 'by',
  'sort', 'limit', 'top', 'fields', 'asc', 'desc', 'as', 'run', 'has', 'bucket']);
export function quote(v) {
  const text = String(v);
  if (/^[A-Za-z_][A-Za-z0-9_.:+-]*$/.test(text) && !KEYWORDS.has(text.toLowerCase())) return text;
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\t/g, '\\t').replace(/\r/g, '\\r')}"`;
}
