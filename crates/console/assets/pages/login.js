// Sign in with an API key: the server answers with a session cookie.
import {h, icon} from '../dom.js';
import {t} from '../i18n.js';
import * as api from '../api.js';

export function view({langSwitch, onDone}) {
  const pk = h('input', {name: 'public_key', autocomplete: 'username', placeholder: 'pk-lf-…', spellcheck: 'false'});
  const sk = h('input', {name: 'secret_key', type: 'password', autocomplete: 'current-password', placeholder: 'sk-lf-…', required: true});
  const err = h('div', {class: 'form-error', role: 'alert', hidden: true});
  const btn = h('button', {class: 'btn primary wide', type: 'submit'}, t('login.submit'));
  const form = h('form', {class: 'login-form', onsubmit: async (e) => {
    e.preventDefault();
    err.hidden = true;
    btn.disabled = true;
    try {
      const s = await api.post('/api/v1/session', {public_key: pk.value.trim() || null, secret_key: sk.value.trim()});
      onDone(s);
    } catch (ex) {
      err.textContent = ex.status === 401 ? t('login.invalid') : ex.message;
      err.hidden = false;
      btn.disabled = false;
    }
  }},
  h('label', {}, h('span', {}, t('login.publicKey'), h('em', {class: 'optional'}, t('login.optional'))), pk),
  h('label', {}, h('span', {}, t('login.secretKey')), sk),
  err, btn);
  return h('div', {class: 'login'},
    h('div', {class: 'login-card'},
      h('div', {class: 'login-head'},
        h('img', {src: document.querySelector('link[rel=icon]').href, alt: '', width: 36, height: 36}),
        h('div', {}, h('h1', {}, t('login.title')), h('p', {class: 'muted'}, t('login.subtitle')))),
      form,
      h('p', {class: 'login-help'}, icon('key', 14), ' ', t('login.help'), ' ', h('code', {}, 'loupe keys create --project NAME'))),
    h('div', {class: 'login-foot'}, langSwitch()));
}
