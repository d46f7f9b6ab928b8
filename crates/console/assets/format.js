// Number, duration, time and money formatting, in the console's language.
import {lang} from './i18n.js';

const locale = () => (lang() === 'zh' ? 'zh-CN' : 'en-US');

export function num(v) {
  if (v == null || Number.isNaN(v)) return '—';
  return new Intl.NumberFormat(locale(), {maximumFractionDigits: 2}).format(v);
}

export function compact(v) {
  if (v == null || Number.isNaN(v)) return '—';
  if (Math.abs(v) < 10000) return new Intl.NumberFormat(locale(), {maximumFractionDigits: 1}).format(v);
  return new Intl.NumberFormat(locale(), {notation: 'compact', maximumFractionDigits: 1}).format(v);
}

export function pct(v, digits = 1) {
  if (v == null || Number.isNaN(v)) return '—';
  return `${(v * 100).toFixed(v === 1 || v === 0 ? 0 : digits)}%`;
}

// Durations are ns.
export function duration(ns) {
  if (ns == null || Number.isNaN(ns)) return '—';
  ns = Number(ns);
  if (ns < 1e3) return `${Math.round(ns)}ns`;
  if (ns < 1e6) return `${trim(ns / 1e3)}µs`;
  if (ns < 1e9) return `${trim(ns / 1e6)}ms`;
  if (ns < 60e9) return `${trim(ns / 1e9)}s`;
  const s = Math.round(ns / 1e9);
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor(s / 3600) % 24}h`;
}

function trim(x) {
  const d = x < 10 ? 2 : x < 100 ? 1 : 0;
  return String(Number(x.toFixed(d)));
}

export function cost(v, currency) {
  if (v == null || Number.isNaN(v)) return '—';
  const cur = currency || 'USD';
  const digits = v === 0 ? 2 : Math.abs(v) < 0.01 ? 5 : Math.abs(v) < 1 ? 4 : 2;
  try {
    return new Intl.NumberFormat(locale(), {style: 'currency', currency: cur, minimumFractionDigits: 2, maximumFractionDigits: digits}).format(v);
  } catch {
    return `${v.toFixed(digits)} ${cur}`;
  }
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

// Local wall time of ns since the epoch.
export function time(ns, {seconds = true, date = true, ms = false} = {}) {
  if (ns == null) return '—';
  const d = new Date(Number(ns) / 1e6);
  const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  let clock = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (seconds) clock += `:${pad(d.getSeconds())}`;
  if (ms) clock += `.${pad(d.getMilliseconds(), 3)}`;
  return date ? `${day} ${clock}` : clock;
}

// Short axis label for a tick at ns, given the visible span in ns.
export function tick(ns, spanNs) {
  const d = new Date(Number(ns) / 1e6);
  if (spanNs <= 2 * 86400e9) {
    return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())}${spanNs <= 8 * 86400e9 ? ` ${pad(d.getHours())}:00` : ''}`;
}

export function ago(ns) {
  if (ns == null) return '—';
  const s = (Date.now() - Number(ns) / 1e6) / 1000;
  const rtf = new Intl.RelativeTimeFormat(locale(), {numeric: 'auto'});
  if (s < 60) return rtf.format(-Math.round(s), 'second');
  if (s < 3600) return rtf.format(-Math.round(s / 60), 'minute');
  if (s < 86400) return rtf.format(-Math.round(s / 3600), 'hour');
  return rtf.format(-Math.round(s / 86400), 'day');
}

// RFC 3339 UTC with ns from an exact ns value (a digit string or a number).
export function rfc3339(ns) {
  const text = typeof ns === 'string' ? ns : BigInt(Math.round(Number(ns))).toString();
  const neg = text.startsWith('-');
  const digits = (neg ? text.slice(1) : text).padStart(10, '0');
  const secs = BigInt((neg ? '-' : '') + digits.slice(0, -9));
  let frac = digits.slice(-9);
  if (neg && frac !== '000000000') {
    // Not expected for run times; keep it correct anyway.
    const total = BigInt(text);
    const s = total / 1000000000n - 1n;
    const f = total - s * 1000000000n;
    return `${new Date(Number(s) * 1000).toISOString().slice(0, 19)}.${f.toString().padStart(9, '0')}Z`;
  }
  const base = new Date(Number(secs) * 1000).toISOString().slice(0, 19);
  frac = frac.replace(/0+$/, '');
  return frac ? `${base}.${frac}Z` : `${base}Z`;
}

export function short(id, n = 8) {
  if (!id) return '—';
  return id.length > n + 2 ? `${id.slice(0, n)}…` : id;
}
