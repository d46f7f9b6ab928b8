// API keys of this project on the settings page (admin keys only; GET,
// POST and DELETE /api/v1/keys): list (public parts, scope, created, where
// defined), create with a scope (the secret is shown once, here, and never
// again), revoke. A key without the admin scope reads "this key cannot
// manage keys" instead.
import {h, icon, replace} from '../dom.js';
import {t} from '../i18n.js';
import * as api from '../api.js';
import * as fmt from '../format.js';
import {failure, empty} from '../widgets.js';

const SCOPES = ['ingest', 'read', 'admin'];

// box: the element to draw into; onKeysRequired: the first key was just
// created (the console must sign in from now on); onDenied(e): the key may
// not manage keys (403), the caller shows what it can instead.
export function keysPanel(box, {signal, onKeysRequired, onDenied}) {
  const list = h('div', {}, h('div', {class: 'skeleton'}));
  const form = h('div', {});

  async function load() {
    try {
      const res = await api.get('/api/v1/keys', {signal});
      if (!list.isConnected) replace(box, list, form);
      draw(res);
    } catch (e) {
      if (e.name === 'AbortError') return;
      if (e.status === 403 && onDenied) { onDenied(e); return; }
      if (!list.isConnected) replace(box, list, form);
      replace(list, failure(e, t('keys.canList')));
      replace(form);
    }
  }

  function draw(res) {
    const keys = res.keys || [];
    replace(list, keys.length ? h('div', {class: 'table-box'}, h('table', {class: 'table', dataset: {testid: 'keys'}},
      h('thead', {}, h('tr', {}, ['settings.publicKey', 'keys.scope', 'settings.created', 'settings.keySource', ''].map((k) =>
        h('th', {}, k ? t(k) : h('span', {class: 'sr-only'}, t('alerts.actions')))))),
      h('tbody', {}, keys.map((k) => h('tr', {dataset: {key: k.public_key, scope: k.scope}},
        h('td', {class: 'mono'}, k.public_key),
        h('td', {}, h('span', {class: ['badge', k.scope === 'admin' ? 'ph-pending' : 'st-ok']}, t(`keys.scope.${k.scope}`)),
          k.scope_unset ? h('span', {class: 'muted small'}, ` ${t('keys.unsetScope')}`) : null),
        h('td', {}, k.created_at ? fmt.time(Date.parse(k.created_at) * 1e6, {seconds: false}) : '—'),
        h('td', {class: 'small'}, t(`keys.src.${k.source}`)),
        h('td', {}, k.source === 'keys_json' ? h('button', {class: 'btn small', dataset: {action: 'revoke'},
          onclick: (e) => revoke(k, e.currentTarget)}, t('keys.revoke')) : null)))))) : empty(t('keys.none'), res.enforced ? null : t('keys.firstHint')));
    // An open form or a secret being shown stays.
    if (!form.firstChild) replace(form, newButton(res.enforced));
  }

  const newButton = (enforced) => h('button', {class: 'btn', dataset: {action: 'new-key'}, onclick: () => createForm(enforced)}, icon('plus', 12), ' ', t('keys.new'));

  function createForm(enforced) {
    const scope = h('select', {class: 'input', dataset: {field: 'scope'}, 'aria-label': t('keys.scope')},
      SCOPES.map((sc) => h('option', {value: sc, selected: sc === (enforced ? 'read' : 'admin')}, `${t(`keys.scope.${sc}`)} — ${t(`keys.scopeHint.${sc}`)}`)));
    const msg = h('div', {class: 'form-msg', role: 'status'});
    const submit = async (e) => {
      e.preventDefault();
      replace(msg);
      try {
        const k = await api.post('/api/v1/keys', {scope: scope.value});
        showSecret(k, enforced);
        load();
      } catch (err) {
        replace(msg, err.status === 403 ? failure(err, t('keys.canCreate')) : h('span', {class: 'bad-text', dataset: {testid: 'key-error'}}, err.message));
      }
    };
    replace(form, h('form', {class: 'key-form', dataset: {testid: 'key-form'}, onsubmit: submit},
      h('h3', {}, t('keys.new')),
      enforced ? null : h('p', {class: 'muted small'}, t('keys.firstHint')),
      h('div', {class: 'form-row'}, scope,
        h('button', {type: 'submit', class: 'btn primary'}, t('keys.create')),
        h('button', {type: 'button', class: 'btn', onclick: () => replace(form, newButton(enforced))}, t('alerts.cancel'))),
      msg));
  }

  // The secret, once: copyable, and gone when the box is closed.
  function showSecret(k, wasEnforced) {
    const copy = (text) => h('button', {type: 'button', class: 'btn small', onclick: () => navigator.clipboard && navigator.clipboard.writeText(text).catch(() => {})},
      icon('copy', 12), t('common.copy'));
    const close = () => {
      replace(form, newButton(true));
      if (!wasEnforced && onKeysRequired) onKeysRequired();
    };
    replace(form, h('div', {class: 'secret-box', dataset: {testid: 'new-key'}},
      h('strong', {}, t('keys.created', {scope: t(`keys.scope.${k.scope}`)})),
      h('div', {}, t('settings.publicKey'), ': ', h('code', {dataset: {testid: 'new-public'}}, k.public_key), ' ', copy(k.public_key)),
      h('div', {}, t('login.secretKey'), ': ', h('code', {dataset: {testid: 'new-secret'}}, k.secret_key), ' ', copy(k.secret_key)),
      h('p', {class: 'small'}, icon('alert', 12), ' ', t('keys.onceOnly')),
      wasEnforced ? null : h('p', {class: 'small bad-text'}, t('keys.nowRequired')),
      h('div', {}, h('button', {type: 'button', class: 'btn primary', dataset: {action: 'secret-done'}, onclick: close}, t('keys.done')))));
  }

  async function revoke(k, btn) {
    if (!window.confirm(t('keys.confirmRevoke', {key: k.public_key}))) return;
    btn.disabled = true;
    try {
      await api.del(`/api/v1/keys/${encodeURIComponent(k.public_key)}`);
      load();
    } catch (e) {
      btn.disabled = false;
      btn.after(e.status === 403 ? failure(e, t('keys.canRevoke')) : h('span', {class: 'bad-text small', dataset: {testid: 'revoke-error'}}, ` ${e.message}`));
    }
  }

  load();
}
