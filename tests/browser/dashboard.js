#!/usr/bin/env node
/* dashboard.js - the dashboard in Debian's chromium, driven by playwright-core.
 *
 *   node dashboard.js --expect EXPECT.json --out RESULT.json --shots DIR
 *
 * EXPECT.json is written by tests/test_dashboard_ui.c: the server's URL, two
 * accounts, and the figures the pages must show, computed from the database
 * with SQL.  Every check is recorded in RESULT.json ({checks: [{name, ok,
 * detail}], enroll_code}); the harness reads it and then verifies on real
 * tablets what the browser did (the resolved conflict, the issued code, the
 * revoked device).  Exit status 0 only if every check passed.
 *
 * No browser is downloaded: executablePath is /usr/bin/chromium. */
'use strict';
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}
const E = JSON.parse(fs.readFileSync(arg('expect'), 'utf8'));
const OUT = arg('out', 'result.json');
const SHOTS = arg('shots', 'build/screenshots');
const BASE = E.url;
const TIMEOUT = Number(process.env.ES_BROWSER_TIMEOUT_MS || 30000);

const result = { checks: [], enroll_code: null, screenshots: [] };
function check(name, ok, detail) {
  result.checks.push({ name, ok: !!ok, detail: ok ? '' : String(detail || '') });
  console.log((ok ? 'ok     ' : 'FAILED ') + name + (ok ? '' : ' - ' + detail));
}
function eq(name, got, want) { check(name, got === want, `got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`); }
function save() { fs.writeFileSync(OUT, JSON.stringify(result, null, 2)); }

async function value(page, sel, attr) {
  const el = await page.$(sel);
  if (!el) return 'missing ' + sel;
  const v = await el.getAttribute(attr || 'data-value');
  return v === null ? `no ${attr || 'data-value'} on ${sel}` : Number(v);
}
/* Opens a route of the single page and waits until its view has rendered. */
async function open(page, hash, testid) {
  await page.evaluate((h) => {
    const slot = document.querySelector('[data-testid=view]');
    if (slot) slot.removeAttribute('data-ready');
    if (location.hash === h) window.dispatchEvent(new HashChangeEvent('hashchange'));
    else location.hash = h;
  }, hash);
  const sel = testid ? `[data-testid=view][data-ready="1"] [data-testid=${testid}]` : '[data-testid=view][data-ready]';
  await page.waitForSelector(sel, { timeout: TIMEOUT });
}
async function shot(page, name, opts) {
  const file = path.join(SHOTS, name + '.png');
  await page.mouse.move(0, 0);
  /* a full-page shot of a scrolled page draws the sticky header mid-page */
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot(Object.assign({ path: file, fullPage: true }, opts || {}));
  result.screenshots.push(file);
}
async function login(page, name, password) {
  await page.fill('[data-testid=login-name]', name);
  await page.fill('[data-testid=login-password]', password);
  await page.click('[data-testid=login-submit]');
}
/* A request from the page itself, with its cookie (and CSRF header if given). */
async function pageFetch(page, url, opts) {
  return page.evaluate(async ([u, o]) => {
    const r = await fetch(u, o || { credentials: 'same-origin' });
    let body = null;
    try { body = await r.clone().json(); } catch (e) { body = null; }
    return { status: r.status, error: body && body.error, body, text: body ? null : (await r.text()).slice(0, 200) };
  }, [url, opts || null]);
}
function parseCsv(text) {
  text = text.replace(/^\uFEFF/, '');
  const rows = [];
  let row = [], field = '', quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field); rows.push(row); row = []; field = '';
    } else field += c;
  }
  if (field !== '' || row.length) { row.push(field); rows.push(row); }
  return rows.filter((r) => r.length > 1 || r[0] !== '');
}

const FIGS = ['meals', 'subsidy_fen', 'visits', 'cash_fen', 'goods_value_fen', 'retrofits_accepted'];

async function adminSession(page, ctx) {
  const C = E.county;
  await page.goto(BASE + '/');
  await page.waitForSelector('[data-testid=login-form]', { timeout: TIMEOUT });
  eq('page is Chinese by default', await page.evaluate(() => document.documentElement.lang), 'zh-CN');
  await shot(page, 'login');

  /* a wrong password is refused and opens no session */
  await login(page, E.admin.name, E.admin.password + 'x');
  await page.waitForSelector('[data-testid=login-error]:not(.hidden)', { timeout: TIMEOUT });
  check('wrong password shows an error', (await page.textContent('[data-testid=login-error]')).includes('不正确'),
    await page.textContent('[data-testid=login-error]'));
  eq('wrong password: no session (/api/me)', (await pageFetch(page, '/api/me')).status, 401);
  eq('wrong password: still on the login form', await page.isVisible('[data-testid=login-form]'), true);
  await shot(page, 'login-refused');

  await login(page, E.admin.name, E.admin.password);
  await page.waitForSelector('[data-testid=view][data-ready="1"] [data-testid=view-overview]', { timeout: TIMEOUT });
  check('login opens the overview', true);
  eq('who: county_admin', await page.getAttribute('[data-testid=who]', 'data-role'), 'county_admin');
  const cookies = await ctx.cookies();
  const sc = cookies.find((c) => c.name === 'es_session');
  check('session cookie is HttpOnly, SameSite=Strict', sc && sc.httpOnly && sc.sameSite === 'Strict', JSON.stringify(sc));

  /* overview: this month against last month, and attention */
  eq('overview month', await page.getAttribute('[data-testid=view-overview]', 'data-month'), E.month);
  for (const k of FIGS) {
    eq('overview ' + k, await value(page, `[data-testid=kpi-${k}]`), C.figures[k]);
    eq('overview last month ' + k, await value(page, `[data-testid=kpi-${k}-prev]`), C.prev[k]);
  }
  eq('attention: open conflicts', await value(page, '[data-testid=attn-open_conflicts]'), C.open_conflicts);
  eq('attention: duplicate claims', await value(page, '[data-testid=attn-duplicate_claims]'), C.duplicates);
  eq('attention: overdue retrofits', await value(page, '[data-testid=attn-overdue_retrofits]'), C.overdue);
  eq('attention: unvisited must-visit', await value(page, '[data-testid=attn-unvisited_must_visit]'), C.coverage.must - C.coverage.visited);
  eq('compare chart: meals this month', await value(page, '[data-testid=cmp-meals-cur]'), C.figures.meals);
  await shot(page, 'overview');

  /* language: English, remembered across a reload, and back */
  eq('nav in Chinese', (await page.textContent('[data-testid=nav-overview]')).trim(), '总览');
  await page.click('[data-testid=lang-en]');
  await page.waitForSelector('[data-testid=view][data-ready="1"] [data-testid=view-overview]', { timeout: TIMEOUT });
  eq('nav in English', (await page.textContent('[data-testid=nav-overview]')).trim(), 'Overview');
  eq('title in English', (await page.textContent('[data-testid=page-title]')).trim(), 'This month at a glance');
  eq('html lang en', await page.evaluate(() => document.documentElement.lang), 'en');
  eq('figures unchanged in English', await value(page, '[data-testid=kpi-meals]'), C.figures.meals);
  await page.reload();
  await page.waitForSelector('[data-testid=view][data-ready="1"] [data-testid=view-overview]', { timeout: TIMEOUT });
  eq('English remembered after reload', (await page.textContent('[data-testid=nav-overview]')).trim(), 'Overview');
  await shot(page, 'overview-en');
  await page.click('[data-testid=lang-zh]');
  await page.waitForSelector('[data-testid=view][data-ready="1"] [data-testid=view-overview]', { timeout: TIMEOUT });
  eq('back to Chinese', (await page.textContent('[data-testid=nav-overview]')).trim(), '总览');

  /* dining halls */
  await open(page, '#/meals', 'view-meals');
  const mt = C.meal_totals;
  eq('meals: total', await value(page, '[data-testid=kpi-meals]'), C.figures.meals);
  eq('meals: dine-in', await value(page, '[data-testid=kpi-dine_in]'), mt.dine_in);
  eq('meals: delivery', await value(page, '[data-testid=kpi-delivery]'), mt.delivery);
  eq('meals: subsidy', await value(page, '[data-testid=kpi-subsidy_fen]'), C.figures.subsidy_fen);
  eq('meals: hall rows', (await page.$$('[data-testid=hall-row]')).length, C.halls.length);
  for (const hl of C.halls) {
    const row = `[data-testid=hall-row][data-id="${hl.hall_id}"]`;
    for (const k of ['meals', 'dine_in', 'delivery', 'subsidy_fen']) {
      eq(`meals: hall ${hl.hall_id.slice(-4)} ${k}`, await value(page, `${row} [data-testid=hall-${k}]`), hl[k]);
    }
  }
  const daySum = await page.$$eval('[data-testid=chart-meals-days] rect[data-series=dine_in]', (rs) => rs.reduce((a, r) => a + Number(r.dataset.value), 0));
  eq('meals: daily chart adds up (dine-in)', daySum, mt.dine_in);
  const tipText = await page.$eval('[data-testid=chart-meals-days] rect[data-series=dine_in]', (r) => r.querySelector('title') && r.querySelector('title').textContent);
  check('meals: chart bars carry their number on hover', tipText && /\d/.test(tipText), tipText);
  await page.hover('[data-testid=chart-meals-days] rect[data-series=dine_in][data-value]:not([data-value="0"])');
  await page.waitForSelector('.tip:not(.hidden)', { timeout: TIMEOUT });
  check('meals: hovering a bar shows its number', /\d/.test(await page.textContent('.tip')), await page.textContent('.tip'));
  eq('meals: duplicate claims listed', await value(page, '[data-testid=dup-count]'), C.duplicates);
  await shot(page, 'meals');

  /* CSV of the halls table */
  const [dl] = await Promise.all([page.waitForEvent('download', { timeout: TIMEOUT }), page.click('[data-testid=csv-meals-halls]')]);
  const csvPath = await dl.path();
  const csvText = fs.readFileSync(csvPath, 'utf8');
  check('csv: starts with a UTF-8 BOM', csvText.charCodeAt(0) === 0xfeff, 'first char ' + csvText.charCodeAt(0));
  check('csv: file name', /^eldersync-meals-.*\.csv$/.test(dl.suggestedFilename()), dl.suggestedFilename());
  const rows = parseCsv(csvText);
  eq('csv: one row per hall', rows.length - 1, C.halls.length);
  const header = rows[0] || [];
  const mi = header.findIndex((x) => x === 'meals');
  const ii = header.findIndex((x) => x === 'hall_id');
  check('csv: has hall_id and meals columns', mi >= 0 && ii >= 0, header.join(','));
  for (const hl of C.halls) {
    const r = rows.find((x) => x[ii] === hl.hall_id);
    eq(`csv: hall ${hl.hall_id.slice(-4)} meals`, r ? Number(r[mi]) : 'no row', hl.meals);
  }

  /* the township filter of a county account */
  await page.evaluate(() => document.querySelector('[data-testid=view]').removeAttribute('data-ready'));
  await page.selectOption('[data-testid=township]', E.supervisor.township_id);
  await page.waitForSelector('[data-testid=view][data-ready="1"] [data-testid=view-meals]', { timeout: TIMEOUT });
  const T = E.township;
  eq('township filter: its meals', await value(page, '[data-testid=kpi-meals]'), T.figures.meals);
  eq('township filter: its halls', (await page.$$eval('[data-testid=hall-row]', (rs) => rs.map((r) => r.dataset.id).sort())).join(),
    T.halls.map((x) => x.hall_id).sort().join());
  await page.evaluate(() => document.querySelector('[data-testid=view]').removeAttribute('data-ready'));
  await page.selectOption('[data-testid=township]', '');
  await page.waitForSelector('[data-testid=view][data-ready="1"] [data-testid=view-meals]', { timeout: TIMEOUT });
  eq('township filter off: the county again', await value(page, '[data-testid=kpi-meals]'), C.figures.meals);

  /* retrofits */
  await open(page, '#/retrofits', 'view-retrofits');
  for (const st of Object.keys(C.funnel)) eq('retrofits: funnel ' + st, await value(page, `[data-testid=funnel-${st}]`), C.funnel[st]);
  eq('retrofits: annual target', await value(page, '[data-testid=funnel-target]'), E.retrofit_target);
  eq('retrofits: overdue', await value(page, '[data-testid=overdue-count]'), C.overdue);
  await shot(page, 'retrofits');

  /* visits */
  await open(page, '#/visits', 'view-visits');
  eq('visits: must visit', await value(page, '[data-testid=cov-must]'), C.coverage.must);
  eq('visits: visited', await value(page, '[data-testid=cov-visited]'), C.coverage.visited);
  eq('visits: centenarians visited', await value(page, '[data-testid=covcat-centenarian-visited]'), C.coverage.visited);
  eq('visits: centenarians to visit', await value(page, '[data-testid=covcat-centenarian-visited]', 'data-of'), C.coverage.must);
  for (const [tw, c] of Object.entries(C.coverage.townships)) {
    eq(`visits: township ${tw.slice(-4)} visited`, await value(page, `[data-testid=covtw-${tw}-visited]`), c.visited);
    eq(`visits: township ${tw.slice(-4)} to visit`, await value(page, `[data-testid=covtw-${tw}-visited]`, 'data-of'), c.must);
  }
  eq('visits: unvisited listed', (await page.$$('[data-testid=unvisited-row]')).length, C.coverage.must - C.coverage.visited);
  for (const k of Object.keys(C.kinds)) eq('visits: kind ' + k, await value(page, `[data-testid=chart-visit-kinds] rect[data-cat=${k}]`), C.kinds[k]);
  const [vdl] = await Promise.all([page.waitForEvent('download', { timeout: TIMEOUT }), page.click('[data-testid=csv-visits-unvisited]')]);
  const vrows = parseCsv(fs.readFileSync(await vdl.path(), 'utf8'));
  eq('csv: one row per unvisited senior', vrows.length - 1, C.coverage.must - C.coverage.visited);
  check('csv: Chinese survives the round trip', vrows.slice(1).every((r) => r.some((f) => /[\u4e00-\u9fff]/.test(f))), JSON.stringify(vrows[1]));
  eq('visits: cash', await value(page, '[data-testid=kpi-cash_fen]'), C.handouts.cash_fen);
  eq('visits: goods value', await value(page, '[data-testid=kpi-goods_value_fen]'), C.handouts.goods_value_fen);
  await shot(page, 'visits');

  /* conflicts: both versions side by side; pick one column, edit another */
  await open(page, '#/conflicts', 'view-conflicts');
  const X = E.conflict;
  const card = `[data-testid=conflict][data-row="${X.row_id}"][data-kind=lww]`;
  check('conflicts: the senior edit is queued', await page.$(card), 'no card ' + card);
  const dup = await page.$('[data-testid=conflict][data-kind=duplicate_claim]');
  check('conflicts: the duplicate claim is queued', dup, 'no duplicate_claim card');
  result.dup_conflict = dup ? await dup.getAttribute('data-id') : null;
  eq('conflicts: names the senior', ((await page.textContent(`${card} [data-testid=conflict-senior]`)) || '').replace(/^\s*·\s*/, ''), X.senior_name);
  eq('conflicts: current value', (await page.textContent(`${card} [data-testid=cur-${X.pick_column}]`)).trim(), X.winner_value);
  check('conflicts: the overwritten value is shown', (await page.textContent(`${card} [data-testid=col-${X.pick_column}]`)).includes(X.pick_value), 'loser not shown');
  await page.check(`${card} [data-testid=pick-${X.pick_column}-loser]`);
  await page.fill(`${card} [data-testid=edit-${X.edit_column}]`, X.edit_value);
  await shot(page, 'conflicts');                     /* the choices made, before applying */
  await page.click(`${card} [data-testid=act-apply]`);
  await page.waitForSelector('[data-testid=view][data-ready="1"] [data-testid=flash]', { timeout: TIMEOUT });
  eq('conflicts: resolved card leaves the queue', await page.$(card), null);
  await open(page, '#/conflicts?status=resolved', 'view-conflicts');
  check('conflicts: listed as resolved', await page.$(`[data-testid=conflict][data-row="${X.row_id}"]`), 'not in resolved list');
  eq('conflicts: resolution recorded as apply', await page.getAttribute(`[data-testid=conflict][data-row="${X.row_id}"] [data-testid=resolution]`, 'data-action'), 'apply');
  eq('conflicts: the chosen phone is now current', (await page.textContent(`[data-testid=conflict][data-row="${X.row_id}"] [data-testid=cur-${X.pick_column}]`)).trim(), X.pick_value);
  eq('conflicts: the edited address is now current', (await page.textContent(`[data-testid=conflict][data-row="${X.row_id}"] [data-testid=cur-${X.edit_column}]`)).trim(), X.edit_value);
  await shot(page, 'conflicts-resolved');

  /* devices: list, enrollment code with QR, revoke */
  await open(page, '#/devices', 'view-devices');
  eq('devices: rows', (await page.$$('[data-testid=device-row]')).length, C.devices);
  await page.selectOption('[data-testid=enroll-role]', E.enroll.role);
  await page.selectOption('[data-testid=enroll-scope]', E.enroll.scope);
  await page.click('[data-testid=enroll-issue]');
  await page.waitForSelector('[data-testid=enroll-code]', { timeout: TIMEOUT });
  result.enroll_code = (await page.textContent('[data-testid=enroll-code]')).trim();
  check('devices: code issued', /^[A-Za-z0-9-]{8,}$/.test(result.enroll_code), result.enroll_code);
  const qrParts = await page.$$eval('[data-testid=enroll-qr] svg *', (n) => n.length);
  check('devices: QR code drawn as SVG', qrParts > 0, 'svg children: ' + qrParts);
  await shot(page, 'devices');
  page.once('dialog', (d) => d.accept());
  await page.click(`[data-testid="revoke-${E.revoke_device}"]`);
  await page.waitForSelector('[data-testid=view][data-ready="1"] [data-testid=flash]', { timeout: TIMEOUT });
  const revRow = `[data-testid=device-row][data-id="${E.revoke_device}"]`;
  check('devices: revoked device shown revoked', (await page.textContent(revRow)).includes('已吊销'), await page.textContent(revRow));
  eq('devices: no revoke button on a revoked device', await page.$(`[data-testid="revoke-${E.revoke_device}"]`), null);
  await shot(page, 'devices-revoked');

  /* printable report */
  await open(page, '#/report', 'view-report');
  const rk = { meals: 'meals', subsidy_fen: 'subsidy_fen', retrofits_completed: 'retrofits_completed', seniors_visited: 'seniors_visited', cash_fen: 'cash_fen', goods_value_fen: 'goods_value_fen' };
  for (const k of Object.keys(rk)) {
    eq('report: month ' + k, await value(page, `[data-testid=report-month-${k}]`), C.figures[rk[k]]);
    eq('report: year ' + k, await value(page, `[data-testid=report-year-${k}]`), C.year[rk[k]]);
  }
  eq('report: annual target', await value(page, '[data-testid=report-year-retrofit_target]'), E.retrofit_target);
  await shot(page, 'report');
  await page.emulateMedia({ media: 'print' });
  eq('report: print hides the navigation', await page.isVisible('aside'), false);
  await shot(page, 'report-print');
  await page.emulateMedia({ media: 'screen' });

  await page.click('[data-testid=logout]');
  await page.waitForSelector('[data-testid=login-form]', { timeout: TIMEOUT });
  eq('logout ends the session', (await pageFetch(page, '/api/me')).status, 401);
}

async function supervisorSession(page) {
  const T = E.township, S = E.supervisor, other = E.other_township_id;
  await login(page, S.name, S.password);
  await page.waitForSelector('[data-testid=view][data-ready="1"]', { timeout: TIMEOUT });   /* the page last shown */
  await open(page, '#/overview', 'view-overview');
  eq('who: township_supervisor', await page.getAttribute('[data-testid=who]', 'data-role'), 'township_supervisor');
  for (const k of FIGS) eq('township overview ' + k, await value(page, `[data-testid=kpi-${k}]`), T.figures[k]);
  eq('township filter fixed to own township', await page.$eval('[data-testid=township]', (s) => [s.disabled, s.value, s.options.length].join()), `true,${S.township_id},1`);
  await shot(page, 'overview-township');

  /* the UI: asking for another township still shows only its own */
  await open(page, '#/meals?township=' + other, 'view-meals');
  const ids = await page.$$eval('[data-testid=hall-row]', (rs) => rs.map((r) => r.dataset.id).sort());
  eq('township meals: only its halls', ids.join(), T.halls.map((x) => x.hall_id).sort().join());
  eq('township meals: its total', await value(page, '[data-testid=kpi-meals]'), T.figures.meals);
  check('township meals: no other hall in the page', !(await page.$(`[data-id="${E.other_hall_id}"]`)), 'other hall visible');
  await shot(page, 'meals-township');
  await open(page, '#/conflicts', 'view-conflicts');
  eq('township conflicts: none of the other township', await page.$$eval('[data-testid=conflict]', (c) => c.length), T.open_conflicts);

  /* the API directly, with its cookie */
  for (const u of ['/api/overview', '/api/meals', '/api/retrofits', '/api/visits', '/api/devices', '/api/conflicts', '/api/report']) {
    const r = await pageFetch(page, u + '?township=' + other);
    eq(`API ${u}?township=other: 403 forbidden_scope`, r.status + ' ' + r.error, '403 forbidden_scope');
  }
  const csv = await pageFetch(page, '/api/meals?format=csv&table=halls&township=' + other);
  eq('API CSV of another township: 403', csv.status, 403);
  const own = await pageFetch(page, '/api/meals');
  eq('API meals: only its halls', own.status === 200 ? own.body.halls.map((x) => x.hall_id).sort().join() : 'status ' + own.status,
    T.halls.map((x) => x.hall_id).sort().join());
  if (result.dup_conflict) {
    const me = await pageFetch(page, '/api/me');
    const r = await pageFetch(page, `/api/conflicts/${result.dup_conflict}/resolve`, {
      method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.body.csrf },
      body: JSON.stringify({ action: 'keep' }) });
    check('API: resolving another township\'s conflict is refused', r.status === 403 || r.status === 404, r.status + ' ' + r.error);
  }
  const nocsrf = await pageFetch(page, '/api/logout', { method: 'POST', credentials: 'same-origin' });
  eq('API: POST without CSRF token refused', nocsrf.status + ' ' + nocsrf.error, '403 csrf');
}

(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  let browser;
  const errors = [];
  try {
    browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
      args: ['--disable-dev-shm-usage', '--lang=zh-CN', '--font-render-hinting=none'] });
    const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai', acceptDownloads: true });
    ctx.setDefaultTimeout(TIMEOUT);
    const page = await ctx.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) errors.push('CSP: ' + m.text()); });
    await adminSession(page, ctx);
    await supervisorSession(page);
    check('no script errors or CSP violations in the page', errors.length === 0, errors.join(' | '));
  } catch (e) {
    check('browser run completed', false, e && e.stack ? e.stack.split('\n').slice(0, 4).join(' ') : String(e));
  } finally {
    if (browser) await browser.close().catch(() => {});
    save();
  }
  const bad = result.checks.filter((c) => !c.ok).length;
  console.log(`${result.checks.length - bad} checks passed, ${bad} failed; screenshots: ${result.screenshots.join(' ')}`);
  process.exit(bad ? 1 : 0);
})();
