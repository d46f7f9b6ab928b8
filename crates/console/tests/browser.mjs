// Launches Debian's chromium headless through playwright-core (no browser
// download): the executable comes from LOUPE_TEST_CHROMIUM
// (scripts/peers/chromium.sh prints it).
import {createRequire} from 'node:module';
import path from 'node:path';
import fs from 'node:fs';

export function playwright() {
  const modules = process.env.LOUPE_TEST_NODE_MODULES;
  if (!modules) throw new Error('LOUPE_TEST_NODE_MODULES is not set: run `eval "$(scripts/peers/chromium.sh)"`');
  const require = createRequire(path.join(modules, 'noop.js'));
  return require('playwright-core');
}

export async function launch() {
  const exe = process.env.LOUPE_TEST_CHROMIUM;
  if (!exe || !fs.existsSync(exe)) throw new Error(`LOUPE_TEST_CHROMIUM (${exe}) is not a chromium: run scripts/peers/chromium.sh`);
  const {chromium} = playwright();
  const browser = await chromium.launch({
    executablePath: exe,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
    // playwright gives the browser a new empty profile of its own.
  });
  return browser;
}
