// The dashboard in a real browser (Debian's chromium through playwright-core, installed by
// `make web` into web/node_modules). Needs a running stack with traffic:
//   WEB_URL     surveybus-web's base URL, e.g. http://127.0.0.1:8080/
//   CTL         surveybusctl with its options, e.g. "bin/surveybusctl -c config/dev.json"
//               (with the SURVEYBUS_* variables of the stack in the environment)
//   SCREENSHOT  where to save the page's picture (default tests/artifacts/dashboard.png);
//               a phone-sized one goes beside it as *-phone.png
//   NPS_MIN_COUNT  responses the 24h/all NPS must count before it is compared (default 10)
// Checks: the 24h/all NPS tile shows a number; once the stream has settled it equals
// `CTL --json metrics` for that slice; a new update changes the page without a reload.
// Prints "N passed, N failed" last; exits 1 when a check failed.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(join(ROOT, 'web/package.json'));
const { chromium } = require('playwright-core');

const WEB_URL = process.env.WEB_URL;
const CTL = process.env.CTL;
const SCREENSHOT = resolve(process.env.SCREENSHOT || join(ROOT, 'tests/artifacts/dashboard.png'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const NPS = '[data-testid="tile-nps-24h-score"]';
// the comparison waits for this many NPS responses, so that it is not of a lone first answer
const MIN_COUNT = Number(process.env.NPS_MIN_COUNT || 10);

let passed = 0, failed = 0;
function check(name, ok, detail = '') {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The slice as surveybusctl reads it from Redis: {score, as_of}, or null.
function ctlNps() {
  const words = CTL.trim().split(/\s+/);
  const out = execFileSync(words[0], [...words.slice(1), '--json', 'metrics', '--metric', 'nps',
    '--window', '24h', '--dimension', 'all', '--value', 'all'], { encoding: 'utf8', timeout: 15000 });
  const list = JSON.parse(out);
  return Array.isArray(list) && list.length ? list[0] : null;
}

// The tile and the NPS trend, read in one go so both describe the same render.
async function pageNps(page) {
  return page.evaluate((sel) => {
    const e = document.querySelector(sel);
    const t = document.querySelector('[data-testid="trend-nps"]');
    if (!e) return null;
    return { text: e.textContent, score: e.dataset.score, count: e.dataset.count,
      as_of: e.dataset.asOf, points: t ? Number(t.dataset.points) : -1 };
  }, NPS).catch(() => null);
}

async function main() {
  if (!WEB_URL || !CTL) {
    console.error('dashboard.test: set WEB_URL and CTL (see the comment at the top)');
    process.exit(2);
  }
  const profile = mkdtempSync(join(tmpdir(), 'sb-chromium-'));
  // without the background-networking flags chromium keeps trying hosts this machine cannot reach
  // a fresh --user-data-dir: playwright passes the profile given here as that flag
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1366, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = browser.pages()[0] || await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    const external = [];
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.origin !== new URL(WEB_URL).origin) external.push(r.url());
    });
    await page.goto(WEB_URL, { waitUntil: 'load', timeout: 30000 });
    await page.evaluate(() => { window.__sbLoadMark = 'same-document'; });

    // 1. a number in the 24h/all NPS tile, from at least MIN_COUNT responses
    let shown = null;
    const end1 = Date.now() + 90000;
    while (Date.now() < end1) {
      shown = await pageNps(page);
      if (shown && shown.score && Number.isFinite(Number(shown.text)) && Number(shown.count) >= MIN_COUNT) break;
      await sleep(500);
    }
    check(`24h/all NPS tile shows a number (n >= ${MIN_COUNT})`,
      shown && Number.isFinite(Number(shown.text)) && Number(shown.count) >= MIN_COUNT,
      JSON.stringify(shown));

    // 2. equal to surveybusctl once the stream has settled: Redis and the tile are read in
    // turn until they agree on score and count; the tile showing the very evaluation (as_of)
    // that Redis holds with another number is a failure at once
    let last = null, same = false, sameAsOfDiffers = false;
    const end2 = Date.now() + 60000;
    while (Date.now() < end2) {
      const c = ctlNps();
      await sleep(300); // lets an update published with this value reach the page
      const p = await pageNps(page);
      last = { ctl: c && { score: c.score, count: c.count, as_of: c.as_of }, page: p };
      if (c && p && Number(p.text) === c.score && Number(p.count) === c.count) { same = true; break; }
      if (c && p && p.as_of === c.as_of) { sameAsOfDiffers = true; break; }
      await sleep(700);
    }
    check('24h/all NPS equals surveybusctl metrics --json', same && !sameAsOfDiffers, JSON.stringify(last));

    // 3. a new update changes the page without a reload
    const first = await pageNps(page);
    let changed = false, now = null;
    const end3 = Date.now() + 60000;
    while (Date.now() < end3) {
      now = await pageNps(page);
      if (now && first && (now.as_of !== first.as_of || now.points > first.points)) { changed = true; break; }
      await sleep(500);
    }
    const mark = await page.evaluate(() => window.__sbLoadMark);
    check('a new update changes the page', changed,
      `as_of ${first && first.as_of} -> ${now && now.as_of}, ` +
      `trend points ${first && first.points} -> ${now && now.points}`);
    check('... without a reload', mark === 'same-document', String(mark));

    const alerts = await page.$$eval('[data-testid="alert-list"] > li', (l) => l.length);
    console.log(`info alerts listed: ${alerts}`);
    check('no script error on the page', errors.length === 0, errors.join(' | '));
    check('nothing fetched from another origin', external.length === 0, external.slice(0, 5).join(' '));

    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`info screenshot ${SCREENSHOT}`);
    // the same page on a phone-sized screen, beside it
    const phone = SCREENSHOT.replace(/(\.png)?$/i, '-phone.png');
    await page.setViewportSize({ width: 390, height: 844 });
    await sleep(500);
    await page.screenshot({ path: phone, fullPage: true });
    console.log(`info screenshot ${phone}`);
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

main()
  .catch((e) => {
    failed++;
    console.log(`FAIL dashboard.test: ${e && e.stack ? e.stack : e}`);
  })
  .finally(() => {
    console.log(`${passed} passed, ${failed} failed`);
    process.exitCode = failed ? 1 : 0;
  });
