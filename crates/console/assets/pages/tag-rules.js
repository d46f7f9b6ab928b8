// Business-tag rules on the Settings page (/api/v1/tags/rules): the rules
// that apply to this project in the order they run, those of loupe.toml
// read-only, those added here editable; a form that previews a rule on the
// stored runs (POST …/preview: runs it would tag, its values, examples)
// before saving it (PUT …/rules/{name}), and applying the rules to stored
// runs (POST /api/v1/tags/apply). The server validates: its 4xx is shown.
import {h, icon, replace} from '../dom.js';
import {t} from '../i18n.js';
import * as api from '../api.js';
import * as fmt from '../format.js';
import {empty} from '../widgets.js';

const labelled = (key, control) => h('label', {class: 'field'}, h('span', {class: 'field-label'}, t(key)), control);
const DAY = 86400e3;

function previewView(p) {
  return h('div', {class: 'stack', dataset: {testid: 'tag-preview'}},
    h('p', {}, t('tags.previewText', {n: fmt.num(p.runs_tagged), of: fmt.num(p.runs_scanned), already: fmt.num(p.runs_already)})),
    p.values.length ? h('div', {class: 'chips'}, p.values.map((v) => h('span', {class: 'chip mono', dataset: {value: v.value}}, `${v.value} · ${fmt.num(v.runs)}`))) : null,
    p.examples.length ? h('div', {class: 'small muted'}, p.examples.map((e) => h('div', {},
      e.trace_id ? h('a', {href: `/runs/${encodeURIComponent(e.trace_id)}`, class: 'mono'}, e.trace_id) : '—', ` → ${e.value}`))) : null);
}

// Mounts into `box`; `labels`: the rollup label tags (marked in the table).
export function tagRulesPanel(box, {labels = [], signal}) {
  const message = h('div', {dataset: {testid: 'tag-message'}});
  const tableBox = h('div', {});
  const els = {
    name: h('input', {class: 'input', dataset: {field: 'name'}, placeholder: 'tier', 'aria-label': t('settings.tag')}),
    from: h('select', {class: 'input', dataset: {field: 'from'}, 'aria-label': t('settings.from')},
      ['input', 'attribute'].map((f) => h('option', {value: f}, t(`tags.from.${f}`)))),
    path: h('input', {class: 'input', dataset: {field: 'path'}, placeholder: 'inputs.profile.tier', 'aria-label': t('settings.path')}),
    regex: h('input', {class: 'input', dataset: {field: 'regex'}, placeholder: '^(gold|silver)$', 'aria-label': t('settings.regex')}),
    app_id: h('input', {class: 'input', dataset: {field: 'app_id'}, placeholder: t('tags.anyApp'), 'aria-label': 'app_id'}),
  };
  const body = () => ({from: els.from.value, path: els.path.value || null, regex: els.regex.value || null, app_id: els.app_id.value || null});
  const fail = (e) => replace(message, h('div', {class: 'panel-error', dataset: {testid: 'tag-error', status: String(e.status || '')}}, icon('alert', 14), ' ', e.message));
  const ok = (text) => replace(message, h('div', {class: 'muted', dataset: {testid: 'tag-ok'}}, text));

  function table(d) {
    const rules = d.rules || [];
    if (!rules.length) return empty(t('settings.noRules'), t('settings.rulesHint'));
    return h('div', {class: 'table-box'}, h('table', {class: 'table', dataset: {testid: 'tag-rules'}},
      h('thead', {}, h('tr', {}, ['settings.tag', 'settings.from', 'settings.path', 'settings.regex', 'settings.scope', 'settings.isLabel', 'tags.source'].map((k) => h('th', {}, t(k))), h('th', {}))),
      h('tbody', {}, rules.map((r) => h('tr', {dataset: {tag: r.name, source: r.source}},
        h('td', {class: 'mono'}, `tags.${r.name}`),
        h('td', {}, r.from),
        h('td', {class: 'mono'}, r.path || r.name),
        h('td', {class: 'mono small'}, r.regex || '—'),
        h('td', {class: 'small'}, [r.project ? `${t('nav.project')} ${r.project}` : t('settings.allProjects'), r.app_id ? ` · app ${r.app_id}` : ''].join('')),
        h('td', {}, labels.includes(r.name) ? h('span', {class: 'badge st-ok'}, t('settings.yes')) : h('span', {class: 'muted'}, t('settings.no'))),
        h('td', {class: 'small'}, t(`tags.src.${r.source}`)),
        h('td', {}, r.source === 'console' ? [
          h('button', {class: 'btn small', dataset: {action: 'edit-tag'}, onclick: () => edit(r)}, t('tags.edit')),
          ' ',
          h('button', {class: 'btn small', dataset: {action: 'delete-tag'}, onclick: () => remove(r.name)}, icon('trash', 12)),
        ] : null))))));
  }
  function edit(r) {
    els.name.value = r.name;
    els.from.value = r.from;
    els.path.value = r.path || '';
    els.regex.value = r.regex || '';
    els.app_id.value = r.app_id || '';
    els.name.focus();
  }
  async function load() {
    try {
      const d = await api.get('/api/v1/tags/rules', {signal});
      replace(tableBox, table(d));
      form.hidden = !d.editable;
    } catch (e) {
      if (e.name !== 'AbortError') fail(e);
    }
  }
  async function preview() {
    replace(message);
    try {
      const p = await api.post('/api/v1/tags/rules/preview', {name: els.name.value, rule: body(), from: new Date(Date.now() - 7 * DAY).toISOString(), max_runs: 1000}, {signal});
      replace(message, previewView(p));
    } catch (e) { if (e.name !== 'AbortError') fail(e); }
  }
  async function save() {
    replace(message);
    try {
      const d = await api.put(`/api/v1/tags/rules/${encodeURIComponent(els.name.value)}`, body(), {signal});
      replace(tableBox, table(d));
      ok(t('tags.saved', {name: els.name.value}));
    } catch (e) { if (e.name !== 'AbortError') fail(e); }
  }
  async function remove(name) {
    if (!window.confirm(t('tags.confirmDelete', {name}))) return;
    replace(message);
    try {
      const d = await api.del(`/api/v1/tags/rules/${encodeURIComponent(name)}`, {signal});
      replace(tableBox, table(d));
      ok(t('tags.deleted', {name}));
    } catch (e) { if (e.name !== 'AbortError') fail(e); }
  }
  async function apply() {
    replace(message);
    try {
      const r = await api.post('/api/v1/tags/apply', {from: new Date(Date.now() - 30 * DAY).toISOString()}, {signal});
      ok(t('tags.applied', {n: fmt.num(r.runs_tagged), of: fmt.num(r.runs_scanned)}));
    } catch (e) { if (e.name !== 'AbortError') fail(e); }
  }
  const form = h('div', {class: 'stack', dataset: {testid: 'tag-form'}},
    h('div', {class: 'form-row'},
      labelled('settings.tag', els.name), labelled('settings.from', els.from), labelled('settings.path', els.path),
      labelled('settings.regex', els.regex), labelled('tags.app', els.app_id)),
    h('div', {class: 'form-row'},
      h('button', {class: 'btn', dataset: {testid: 'tag-preview-btn'}, onclick: preview}, t('tags.preview')),
      h('button', {class: 'btn primary', dataset: {testid: 'tag-save'}, onclick: save}, t('tags.save')),
      h('button', {class: 'btn', dataset: {testid: 'tag-apply'}, onclick: apply, title: t('tags.applyHint')}, t('tags.apply'))),
    h('p', {class: 'muted small'}, t('tags.formHint')));
  form.hidden = true;
  replace(box, tableBox, form, message);
  load();
}
