// Screenshots of every console page for docs/console/ (run by
// scripts/console-screenshots.sh, which starts the server and loads data).
// Usage: node screenshots.mjs <base-url> <out-dir> <json: {pk, sk, failedRun, run, user, session, from, to}>
import path from 'node:path';
import {launch} from './browser.mjs';

const [base, out, json] = process.argv.slice(2);
const cfg = JSON.parse(json);
const win = `from=${encodeURIComponent(cfg.from)}&to=${encodeURIComponent(cfg.to)}`;
const browser = await launch();
const context = await browser.newContext({viewport: {width: 1440, height: 900}, locale: 'en-US', deviceScaleFactor: 1});
const page = await context.newPage();
const errors = [];
page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
page.on('pageerror', (e) => errors.push(e.message));

async function shot(name, url, ready, {full = false, before} = {}) {
  if (url) await page.goto(base + url);
  await page.waitForSelector(ready, {timeout: 30000});
  if (before) await before();
  await page.waitForTimeout(800);
  await page.screenshot({path: path.join(out, `${name}.png`), fullPage: full});
  console.log(`${name}.png`);
}
const facetsReady = () => page.waitForFunction(() => document.querySelector('.facet')
  && !document.querySelector('.facets .skeleton'), null, {timeout: 30000});
const allReady = () => page.waitForFunction(() => [...document.querySelectorAll('[data-panel]')].length > 10
  && [...document.querySelectorAll('[data-panel]')].every((p) => p.dataset.state), null, {timeout: 30000});

await shot('login', '/', '.login-form');
await page.fill('input[name=public_key]', cfg.pk);
await page.fill('input[name=secret_key]', cfg.sk);
await page.click('button[type=submit]');
await shot('overview', `/?range=24h`, '[data-panel=runs-over-time][data-state=ready]', {full: true, before: allReady});
await shot('runs', `/runs?${win}`, '.table-box[data-rows]', {before: facetsReady});
await shot('runs-query-error', `/runs?${win}&q=${encodeURIComponent('status=error tool_nme=inventory')}`, '.qb-error:not([hidden])');
await shot('runs-spans', `/runs?mode=spans&${win}&q=${encodeURIComponent('span_kind=llm')}`, '.table-box[data-rows]', {before: facetsReady});
await shot('run-failed-dify', `/runs/${cfg.failedRun}`, '[data-testid=span-detail] h2');
await shot('run', `/runs/${cfg.run}`, '[data-testid=span-detail] h2');
await shot('sessions', `/sessions?${win}`, '[data-testid=sessions-table]');
await shot('session', `/sessions/${encodeURIComponent(cfg.session)}`, '[data-testid=turns] li');
await shot('user', `/users/${encodeURIComponent(cfg.user)}`, '[data-testid=turns] li');
await shot('alerts', '/alerts', '[data-testid=rules-table]', {full: true,
  before: () => page.waitForSelector('[data-section=history] .table-box, [data-section=history] .empty-state')});
// The rule editor with a preview of the last 24 h.
await shot('alert-rule', '/alerts', '[data-testid=rules-table]', {before: async () => {
  await page.click('[data-action=new-rule]');
  await page.fill('[data-testid=rule-form] [data-field=name]', 'phone-inventory');
  await page.fill('[data-testid=rule-form] [data-field=threshold]', '20%');
  await page.fill('[data-testid=rule-form] [data-field=window]', '15m');
  await page.fill('[data-testid=rule-filters] [data-field=filter-name]', 'tool_name');
  await page.fill('[data-testid=rule-filters] [data-field=filter-value]', 'inventory');
  await page.fill('[data-testid=rule-form] [data-field=group_by]', 'tags.category');
  await page.click('[data-action=preview]');
  await page.waitForSelector('[data-testid=preview-headline]', {timeout: 60000});
  await page.$eval('[data-testid=rule-form]', (el) => el.scrollIntoView());
}});
await shot('users', `/users?${win}`, '[data-testid=users-table]');
await shot('analytics', `/analytics?${win}`, '[data-testid=paths-flow] svg', {full: true});
await shot('dify', '/dify', '[data-testid=dify-stats]');
await shot('settings', '/settings', '[data-testid=tag-rules]', {full: true});
await page.click('[data-lang=zh]');
await shot('alerts-zh', '/alerts', '[data-testid=rules-table]');
await shot('overview-zh', `/?range=24h`, '[data-panel=runs-over-time][data-state=ready]', {before: allReady});
await shot('run-zh', `/runs/${cfg.run}`, '[data-testid=span-detail] h2');
await page.click('[data-lang=en]');
await browser.close();
const unexpected = errors.filter((e) => !/status of 4\d\d/.test(e));
if (unexpected.length) {
  console.error(`console errors:\n${unexpected.join('\n')}`);
  process.exit(1);
}
