// The console's shell: sign-in check, sidebar, top bar and the router that
// maps the URL to a page module. Pages export mount(ctx) and may return a
// cleanup function.
import {h, icon, clear} from './dom.js';
import {t, lang, setLang} from './i18n.js';
import * as api from './api.js';
import * as overview from './pages/overview.js';
import * as runs from './pages/runs.js';
import * as run from './pages/run.js';
import * as timelines from './pages/timelines.js';
import * as alerts from './pages/alerts.js';
import * as dify from './pages/dify.js';
import * as settings from './pages/settings.js';
import * as login from './pages/login.js';
import * as rca from './pages/rca.js';
import * as analytics from './pages/analytics.js';
import * as logs from './pages/logs.js';

const root = document.getElementById('app');
let session = null;
let cleanup = null;
let renderSeq = 0;

// Navigation entries, one a line; a new page adds its line here, its route
// below and its path to PAGES in crates/api/src/routes/console.rs.
const under = (base) => (p) => p === base || p.startsWith(`${base}/`);
const NAV = [
  {id: 'overview', path: '/', icon: 'overview', match: (p) => p === '/' || p === '/overview'},
  {id: 'runs', path: '/runs', icon: 'runs', match: under('/runs')},
  {id: 'sessions', path: '/sessions', icon: 'sessions', match: under('/sessions')},
  {id: 'users', path: '/users', icon: 'users', match: under('/users')},
  {id: 'logs', path: '/logs', icon: 'runs', match: under('/logs')},
  {id: 'analytics', path: '/analytics', icon: 'overview', match: under('/analytics')},
  {id: 'alerts', path: '/alerts', icon: 'bell', match: under('/alerts')},
  {id: 'dify', path: '/dify', icon: 'database', match: under('/dify')},
  {id: 'settings', path: '/settings', icon: 'settings', match: under('/settings')},
  {id: 'rca', path: '/rca', icon: 'search', match: under('/rca')},
];

const ROUTES = [
  [/^\/(overview)?$/, overview, () => ({})],
  [/^\/runs$/, runs, () => ({})],
  [/^\/runs\/([^/]+)$/, run, (m) => ({id: decodeURIComponent(m[1])})],
  [/^\/sessions$/, timelines, () => ({kind: 'sessions'})],
  [/^\/sessions\/([^/]+)$/, timelines, (m) => ({kind: 'session', id: decodeURIComponent(m[1])})],
  [/^\/users$/, timelines, () => ({kind: 'users'})],
  [/^\/users\/([^/]+)$/, timelines, (m) => ({kind: 'user', id: decodeURIComponent(m[1])})],
  [/^\/alerts$/, alerts, () => ({})],
  [/^\/dify$/, dify, () => ({})],
  [/^\/settings$/, settings, () => ({})],
  [/^\/rca$/, rca, () => ({})],
  [/^\/analytics$/, analytics, () => ({})],
  [/^\/logs$/, logs, () => ({})],
];

export function go(url, {replace = false} = {}) {
  const target = new URL(url, location.href);
  if (target.href === location.href && !replace) return;
  history[replace ? 'replaceState' : 'pushState']({}, '', target.pathname + target.search + target.hash);
  render();
}

function langSwitch() {
  return h('div', {class: 'lang-switch', role: 'group', 'aria-label': t('nav.language')},
    ['en', 'zh'].map((l) => h('button', {
      class: ['lang-btn', lang() === l && 'active'], dataset: {lang: l},
      onclick: () => { setLang(l); render(); },
    }, l === 'en' ? 'EN' : '中文')));
}

function sidebar(path) {
  return h('aside', {class: 'sidebar'},
    h('a', {class: 'brand', href: '/'},
      h('span', {class: 'brand-mark'}, h('img', {src: document.querySelector('link[rel=icon]').href, alt: '', width: 22, height: 22})),
      h('span', {class: 'brand-name'}, 'Loupe')),
    h('nav', {class: 'nav'},
      NAV.map((n) => h('a', {class: ['nav-item', n.match(path) && 'active'], href: n.path, dataset: {nav: n.id},
        'aria-current': n.match(path) ? 'page' : null},
        icon(n.icon, 18), h('span', {}, t(`nav.${n.id}`))))),
    h('div', {class: 'sidebar-foot'},
      h('div', {class: 'project', title: t('nav.project')},
        h('span', {class: 'project-label'}, t('nav.project')),
        h('span', {class: 'project-name', dataset: {project: session.project || ''}}, session.project || '—')),
      langSwitch(),
      session.enforced ? h('button', {class: 'nav-item signout', onclick: signOut}, icon('logout', 18), h('span', {}, t('nav.signOut'))) : null));
}

async function signOut() {
  try { await api.del('/api/v1/session'); } catch { /* signed out anyway */ }
  session = {enforced: true, authenticated: false};
  go('/login', {replace: true});
}

// Where to go after sign-in: a path of this console, never another site.
function safeNext() {
  const next = new URLSearchParams(location.search).get('next') || '/';
  try {
    const url = new URL(next, location.origin);
    if (url.origin === location.origin && !url.pathname.startsWith('/api/')) return url.pathname + url.search;
  } catch { /* not a URL */ }
  return '/';
}

function route(path) {
  for (const [re, mod, params] of ROUTES) {
    const m = re.exec(path);
    if (m) return {mod, params: params(m)};
  }
  return null;
}

async function render() {
  const seq = ++renderSeq;
  if (cleanup) { try { cleanup(); } catch (e) { console.warn(e); } cleanup = null; }
  document.documentElement.lang = lang() === 'zh' ? 'zh-CN' : 'en';
  const path = location.pathname;
  if (!session) {
    try { session = await api.get('/api/v1/session'); } catch (e) { session = {enforced: true, authenticated: false, error: e.message}; }
    if (seq !== renderSeq) return;
  }
  root.classList.remove('booting');
  if (path === '/login' || !session.authenticated) {
    if (session.authenticated) { go(safeNext(), {replace: true}); return; }
    if (path !== '/login') {
      history.replaceState({}, '', `/login?next=${encodeURIComponent(path + location.search)}`);
    }
    clear(root).appendChild(login.view({
      langSwitch,
      onDone: (s) => {
        session = s;
        go(safeNext(), {replace: true});
      },
    }));
    document.title = `${t('login.title')} · Loupe`;
    return;
  }
  const found = route(path);
  const title = h('h1', {class: 'page-title'});
  const actions = h('div', {class: 'topbar-actions'});
  const crumbs = h('div', {class: 'crumbs'});
  const page = h('div', {class: 'page'});
  clear(root).appendChild(h('div', {class: 'shell'},
    sidebar(path),
    h('main', {class: 'main'},
      h('header', {class: 'topbar'}, h('div', {class: 'topbar-title'}, crumbs, title), actions),
      page)));
  const ctx = {
    el: page, actions, params: found ? found.params : {}, search: new URLSearchParams(location.search),
    go, session,
    setTitle: (text, crumbList = []) => {
      title.textContent = text;
      clear(crumbs);
      crumbList.forEach(([label, href]) => crumbs.append(h('a', {href}, label), h('span', {class: 'crumb-sep'}, '/')));
      document.title = `${text} · Loupe`;
    },
  };
  if (!found) {
    ctx.setTitle(t('notFound.title'));
    page.appendChild(h('div', {class: 'empty-state'}, h('p', {}, t('notFound.body')), h('a', {href: '/', class: 'btn'}, t('nav.overview'))));
    return;
  }
  const done = found.mod.mount(ctx);
  if (typeof done === 'function') cleanup = done;
}

// Same-origin links navigate in place.
document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/') || url.pathname.startsWith('/assets/')) return;
  e.preventDefault();
  go(url.href);
});
window.addEventListener('popstate', render);
// "/" focuses the query bar, as in most log and trace consoles.
document.addEventListener('keydown', (e) => {
  if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
  const tag = document.activeElement && document.activeElement.tagName;
  if (tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT') return;
  const bar = document.querySelector('.qb-input');
  if (bar) { e.preventDefault(); bar.focus(); }
});
window.addEventListener('loupe:unauthorized', () => {
  if (session && session.enforced && location.pathname !== '/login') {
    session = {enforced: true, authenticated: false};
    render();
  }
});
window.loupe = {go, version: document.querySelector('script[type=module]').src.split('/').slice(-2)[0]};
render();
