// Small SVG charts drawn here: time series (lines, areas, stacked bars),
// horizontal bar lists and sparklines. Each chart redraws itself when its
// box changes size, shows a crosshair tooltip, and reports clicks.
import {h, s, clear} from './dom.js';
import * as fmt from './format.js';
import {t} from './i18n.js';

export const PALETTE = ['#3d71d9', '#2fb38a', '#f2a33a', '#8b5cf6', '#e0606e', '#22a5c9', '#c2610c', '#7c8a9e'];
export const OK = '#2fb38a';
export const ERR = '#e5484d';

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const norm = raw / mag;
  const step = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10;
  return step * mag;
}

function yTicks(max, count = 4) {
  if (!(max > 0)) return {max: 1, ticks: [0, 1]};
  const step = niceStep(max, count);
  const top = Math.ceil(max / step) * step;
  const ticks = [];
  for (let v = 0; v <= top + step / 2; v += step) ticks.push(v);
  return {max: top, ticks};
}

const TIME_STEPS = [60e9, 5 * 60e9, 10 * 60e9, 15 * 60e9, 30 * 60e9, 3600e9, 3 * 3600e9, 6 * 3600e9,
  12 * 3600e9, 86400e9, 2 * 86400e9, 7 * 86400e9];

function timeTicks(from, to, width) {
  const want = Math.max(2, Math.floor(width / 90));
  const step = TIME_STEPS.find((st) => (to - from) / st <= want) || TIME_STEPS[TIME_STEPS.length - 1];
  const tz = -new Date().getTimezoneOffset() * 60e9;
  const out = [];
  for (let v = Math.ceil((from + tz) / step) * step - tz; v <= to; v += step) out.push(v);
  return out;
}

// Calls draw(width) now and whenever the element's width changes.
function responsive(el, draw) {
  let last = 0;
  const ro = new ResizeObserver((entries) => {
    const w = Math.floor(entries[0].contentRect.width);
    if (w > 0 && w !== last) {
      last = w;
      draw(w);
    }
  });
  ro.observe(el);
  return el;
}

// A time series chart.
//   series: [{name, color, values: Map(bucketStartNs -> number|null)}]
//   kind: 'line' | 'area' | 'stacked' (bars stacked per bucket)
//   from, to, step (ns): the buckets drawn are from..to by step.
//   format: value formatter; onClick(bucketStartNs, seriesName)
export function timeSeries({series, kind = 'line', from, to, step, format = fmt.compact, height = 200,
  onClick, fillZero = kind !== 'line', empty}) {
  const box = h('div', {class: 'chart', style: {height: `${height}px`}});
  const tip = h('div', {class: 'chart-tip', hidden: true});
  const wrap = h('div', {class: 'chart-wrap'}, box, tip, legend(series));
  const start = Math.floor(from / step) * step;
  const buckets = [];
  for (let b = start; b < to; b += step) buckets.push(b);
  const value = (sr, b) => {
    const v = sr.values.get(b);
    return v == null ? (fillZero ? 0 : null) : v;
  };
  const hasData = series.some((sr) => [...sr.values.values()].some((v) => v != null && v !== 0));
  responsive(box, (width) => {
    clear(box);
    if (!hasData) {
      box.appendChild(h('div', {class: 'chart-empty'}, empty || t('chart.empty')));
      return;
    }
    const pad = {l: 48, r: 12, t: 10, b: 24};
    const w = width - pad.l - pad.r;
    const hh = height - pad.t - pad.b;
    let max = 0;
    for (const b of buckets) {
      if (kind === 'stacked') max = Math.max(max, series.reduce((a, sr) => a + (value(sr, b) || 0), 0));
      else for (const sr of series) max = Math.max(max, value(sr, b) || 0);
    }
    const {max: top, ticks} = yTicks(max);
    const x = (ns) => pad.l + ((ns - start) / (buckets.length * step)) * w;
    const y = (v) => pad.t + hh - (v / top) * hh;
    const svg = s('svg', {width, height, class: 'chart-svg', role: 'img'});
    for (const v of ticks) {
      svg.appendChild(s('line', {x1: pad.l, x2: pad.l + w, y1: y(v), y2: y(v), class: 'grid'}));
      svg.appendChild(s('text', {x: pad.l - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end'}, format(v)));
    }
    for (const tk of timeTicks(start, start + buckets.length * step, w)) {
      svg.appendChild(s('text', {x: x(tk), y: height - 6, class: 'axis', 'text-anchor': 'middle'},
        fmt.tick(tk, to - from)));
    }
    const bw = w / buckets.length;
    if (kind === 'stacked') {
      const gap = bw > 6 ? Math.min(2, bw * 0.2) : 0;
      buckets.forEach((b) => {
        let acc = 0;
        for (const sr of series) {
          const v = value(sr, b) || 0;
          if (v > 0) {
            svg.appendChild(s('rect', {x: x(b) + gap / 2, y: y(acc + v), width: Math.max(1, bw - gap),
              height: Math.max(0.5, y(acc) - y(acc + v)), fill: sr.color, class: 'bar'}));
          }
          acc += v;
        }
      });
    } else {
      for (const sr of series) {
        let d = '';
        let area = '';
        let pen = false;
        let first = null;
        let lastX = null;
        buckets.forEach((b) => {
          const v = value(sr, b);
          const px = x(b) + bw / 2;
          if (v == null) {
            if (pen && kind === 'area') area += `L${lastX},${y(0)}Z`;
            pen = false;
            return;
          }
          d += `${pen ? 'L' : 'M'}${px.toFixed(1)},${y(v).toFixed(1)}`;
          if (kind === 'area') {
            if (!pen) { area += `M${px.toFixed(1)},${y(0)}`; first = px; }
            area += `L${px.toFixed(1)},${y(v).toFixed(1)}`;
          }
          lastX = px.toFixed(1);
          pen = true;
        });
        if (kind === 'area' && pen && first != null) area += `L${lastX},${y(0)}Z`;
        if (kind === 'area' && area) svg.appendChild(s('path', {d: area, fill: sr.color, 'fill-opacity': 0.14, stroke: 'none'}));
        svg.appendChild(s('path', {d, fill: 'none', stroke: sr.color, 'stroke-width': 1.8, 'stroke-linejoin': 'round'}));
        // Single points would be invisible as lines.
        buckets.forEach((b, i) => {
          const v = value(sr, b);
          const prev = i > 0 ? value(sr, buckets[i - 1]) : null;
          const next = i < buckets.length - 1 ? value(sr, buckets[i + 1]) : null;
          if (v != null && prev == null && next == null) {
            svg.appendChild(s('circle', {cx: x(b) + bw / 2, cy: y(v), r: 2.5, fill: sr.color}));
          }
        });
      }
    }
    const cross = s('line', {y1: pad.t, y2: pad.t + hh, class: 'crosshair', visibility: 'hidden'});
    svg.appendChild(cross);
    const hit = s('rect', {x: pad.l, y: pad.t, width: w, height: hh, fill: 'transparent',
      class: onClick ? 'hit clickable' : 'hit'});
    const at = (ev) => {
      const r = svg.getBoundingClientRect();
      const i = Math.min(buckets.length - 1, Math.max(0, Math.floor((ev.clientX - r.left - pad.l) / bw)));
      return {i, b: buckets[i], px: ev.clientX - r.left, py: ev.clientY - r.top};
    };
    hit.addEventListener('mousemove', (ev) => {
      const {b, px, py} = at(ev);
      cross.setAttribute('x1', x(b) + bw / 2);
      cross.setAttribute('x2', x(b) + bw / 2);
      cross.setAttribute('visibility', 'visible');
      clear(tip).appendChild(h('div', {class: 'tip-time'}, `${fmt.time(b, {seconds: step < 60e9})} · ${fmt.duration(step)}`));
      for (const sr of series) {
        tip.appendChild(h('div', {class: 'tip-row'},
          h('span', {class: 'swatch', style: {background: sr.color}}), h('span', {class: 'tip-name'}, sr.name),
          h('span', {class: 'tip-val'}, value(sr, b) == null ? '—' : format(value(sr, b)))));
      }
      if (onClick) tip.appendChild(h('div', {class: 'tip-hint'}, t('chart.clickHint')));
      tip.hidden = false;
      const tw = tip.offsetWidth;
      tip.style.left = `${px + 14 + tw > width ? px - tw - 14 : px + 14}px`;
      tip.style.top = `${Math.max(0, py - 20)}px`;
    });
    hit.addEventListener('mouseleave', () => {
      tip.hidden = true;
      cross.setAttribute('visibility', 'hidden');
    });
    if (onClick) {
      hit.addEventListener('click', (ev) => {
        const {b} = at(ev);
        onClick(b, series[0] && series[0].name);
      });
    }
    svg.appendChild(hit);
    box.appendChild(svg);
  });
  return wrap;
}

function legend(series) {
  if (series.length < 2) return null;
  return h('div', {class: 'legend'}, series.map((sr) =>
    h('span', {class: 'legend-item'}, h('span', {class: 'swatch', style: {background: sr.color}}), sr.name)));
}

// A list of horizontal bars: rows [{label, value, sub?, color?, title?}],
// the bar length from value. onClick(row).
export function barList(rows, {format = fmt.compact, onClick, empty, max} = {}) {
  if (!rows.length) return h('div', {class: 'chart-empty small'}, empty || t('chart.empty'));
  const top = max ?? Math.max(...rows.map((r) => r.value || 0), 1e-12);
  return h('div', {class: 'barlist'}, rows.map((r) => h(onClick ? 'button' : 'div', {
    class: ['barlist-row', onClick && 'clickable'],
    title: r.title || r.label,
    onclick: onClick ? () => onClick(r) : null,
    dataset: {label: r.label},
  },
  h('span', {class: 'barlist-fill', style: {width: `${Math.max(0.5, ((r.value || 0) / top) * 100)}%`, background: r.color || PALETTE[0]}}),
  h('span', {class: 'barlist-label'}, r.label),
  r.sub != null ? h('span', {class: 'barlist-sub'}, r.sub) : null,
  h('span', {class: 'barlist-value'}, format(r.value)))));
}

// A small line without axes.
export function sparkline(values, {color = PALETTE[0], width = 120, height = 28} = {}) {
  const pts = values.filter((v) => v != null);
  if (pts.length < 2) return s('svg', {width, height, class: 'spark'});
  const max = Math.max(...pts);
  const min = Math.min(...pts, 0);
  const span = max - min || 1;
  const step = width / (values.length - 1);
  let d = '';
  let pen = false;
  values.forEach((v, i) => {
    if (v == null) { pen = false; return; }
    d += `${pen ? 'L' : 'M'}${(i * step).toFixed(1)},${(height - 2 - ((v - min) / span) * (height - 4)).toFixed(1)}`;
    pen = true;
  });
  return s('svg', {width, height, class: 'spark', viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none'},
    s('path', {d: `${d}L${width},${height}L0,${height}Z`, fill: color, 'fill-opacity': 0.1, stroke: 'none'}),
    s('path', {d, fill: 'none', stroke: color, 'stroke-width': 1.5}));
}

// A donut of ok / error.
export function ratioRing(ok, err, {size = 56} = {}) {
  const total = ok + err;
  const r = size / 2 - 5;
  const c = 2 * Math.PI * r;
  const frac = total ? err / total : 0;
  return s('svg', {width: size, height: size, class: 'ring'},
    s('circle', {cx: size / 2, cy: size / 2, r, fill: 'none', stroke: total ? OK : '#e3e7ee', 'stroke-width': 8}),
    frac > 0 ? s('circle', {cx: size / 2, cy: size / 2, r, fill: 'none', stroke: ERR, 'stroke-width': 8,
      'stroke-dasharray': `${(frac * c).toFixed(2)} ${c.toFixed(2)}`, transform: `rotate(-90 ${size / 2} ${size / 2})`}) : null);
}

// The flow of conversations through their first turns (a Sankey): one
// column per turn, a node per label sized by the conversations that reach
// it, a band per step between two labels. paths: [{path: [label…],
// sessions, abandoned}] (the common paths of /api/v1/analytics/paths);
// a path shorter than the deepest ends there (the `endLabel` node). Nodes
// are ordered by size; a band's colour is its conversations' first turn.
export function sankey(paths, {width = 860, height = 320, endLabel = 'end', empty} = {}) {
  const flows = paths.filter((p) => p.sessions > 0 && p.path.length);
  if (!flows.length) return h('div', {class: 'chart-empty small'}, empty || t('chart.empty'));
  const depth = Math.max(...flows.map((p) => p.path.length));
  const cols = depth + (flows.some((p) => p.path.length < depth) ? 1 : 0);
  // Nodes per column (label → total), links per step (from → to → total).
  const nodes = Array.from({length: cols}, () => new Map());
  const links = Array.from({length: cols - 1}, () => new Map());
  // Conversations that end before the deepest turn go to an end node (a
  // key no label can be; shown as endLabel).
  const END = '\u0000end';
  for (const p of flows) {
    const steps = p.path.length < depth ? [...p.path, END] : p.path;
    steps.forEach((label, i) => {
      nodes[i].set(label, (nodes[i].get(label) || 0) + p.sessions);
      if (i > 0) {
        // Split by the first turn, so a band keeps its origin's colour.
        const key = JSON.stringify([steps[0], steps[i - 1], label]);
        links[i - 1].set(key, (links[i - 1].get(key) || 0) + p.sessions);
      }
    });
  }
  const pad = 10;
  const nodeW = 12;
  const labelW = 120;
  const total = Math.max(...nodes.map((m) => [...m.values()].reduce((a, b) => a + b, 0)));
  const maxNodes = Math.max(...nodes.map((m) => m.size));
  const scale = (height - pad * (maxNodes + 1)) / total;
  const colX = (i) => (cols === 1 ? 0 : (i * (width - labelW - nodeW)) / (cols - 1));
  // Layout: each column's nodes from the top, biggest first.
  const place = nodes.map((m, i) => {
    let y = pad;
    const out = new Map();
    for (const [label, n] of [...m.entries()].sort((a, b) => b[1] - a[1])) {
      out.set(label, {x: colX(i), y, h: Math.max(2, n * scale), n, inY: y, outY: y});
      y += Math.max(2, n * scale) + pad;
    }
    return out;
  });
  const firsts = [...place[0].keys()];
  const color = (label) => PALETTE[Math.max(0, firsts.indexOf(label)) % PALETTE.length];
  // As wide as its box, as tall as the aspect says.
  const svg = s('svg', {class: 'sankey', viewBox: `0 0 ${width} ${height}`, style: 'width: 100%; height: auto; display: block', role: 'img'});
  const shown = (label) => (label === END ? endLabel : label);
  // Bands, widest first so the narrow ones stay visible on top.
  const bands = [];
  links.forEach((m, i) => {
    for (const [key, n] of m) {
      const [first, from, to] = JSON.parse(key);
      bands.push({i, first, from, to, n});
    }
  });
  for (const b of bands.sort((a, c) => c.n - a.n)) {
    const a = place[b.i].get(b.from);
    const z = place[b.i + 1].get(b.to);
    const w = Math.max(1, b.n * scale);
    const x0 = a.x + nodeW;
    const x1 = z.x;
    const y0 = a.outY + w / 2;
    const y1 = z.inY + w / 2;
    a.outY += w;
    z.inY += w;
    const mx = (x0 + x1) / 2;
    svg.appendChild(s('path', {d: `M${x0},${y0}C${mx},${y0} ${mx},${y1} ${x1},${y1}`, fill: 'none',
      stroke: color(b.first), 'stroke-opacity': 0.35, 'stroke-width': w, dataset: {from: b.from, to: shown(b.to), sessions: b.n}},
    s('title', {}, `${b.from} → ${shown(b.to)}: ${fmt.num(b.n)}`)));
  }
  place.forEach((m, i) => {
    for (const [key, p] of m) {
      const label = shown(key);
      svg.appendChild(s('g', {class: 'sankey-node', dataset: {col: i, label, sessions: p.n, ...(key === END ? {end: 'true'} : {})}},
        s('rect', {x: p.x, y: p.y, width: nodeW, height: p.h, rx: 2, fill: key === END ? '#c9d0da' : i === 0 ? color(key) : '#7c8a9e'}),
        s('text', {x: p.x + nodeW + 4, y: p.y + Math.min(p.h / 2, 12) + 4, 'font-size': 11, fill: 'currentColor'},
          `${label.length > 18 ? `${label.slice(0, 17)}…` : label} · ${fmt.num(p.n)}`),
        s('title', {}, `${label}: ${fmt.num(p.n)}`)));
    }
  });
  return svg;
}
