// Every journey of Agora's web interface in Debian's headless Chromium, driven by
// Playwright, against a running demo ecosystem; axe-core checks every page visited (no
// serious or critical violation of WCAG 2.1 A/AA) and the page's console must stay free
// of errors (a Content Security Policy violation would show there).
//
// Usage: AGORA_ECOSYSTEM=path/to/ecosystem.json node journeys.mjs
//   AGORA_CHROMIUM     the browser (default /usr/bin/chromium)
//   AGORA_SCREENSHOTS  a folder to save screenshots of the main pages in (optional)
//
// Run by the demo's end-to-end test (crates/agora/tests/it), which starts the demo.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const eco = JSON.parse(fs.readFileSync(process.env.AGORA_ECOSYSTEM, 'utf8'));
const shots = process.env.AGORA_SCREENSHOTS || '';
if (shots) fs.mkdirSync(shots, { recursive: true });

const member = (id) => eco.members.find((m) => m.id === id);
const password = (m, username) => m.users.find((u) => u.username === username).password;
const EA = member('employment-agency');
const REGISTRY = member('population-registry');

const browser = await chromium.launch({
  executablePath: process.env.AGORA_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});

const checked = [];
let failures = 0;

/** A browser context (its own cookies) with console errors collected. */
async function person(options = {}) {
  const context = await browser.newContext({ acceptDownloads: true, ...options });
  const page = await context.newPage();
  page.problems = [];
  // An error page's own status is reported as a failed load; anything else is a problem.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource: the server responded')) page.problems.push(m.text());
  });
  page.on('pageerror', (e) => page.problems.push(String(e)));
  return { context, page };
}

/** axe-core on the current page: no serious or critical violation. */
async function accessible(page, name) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
  }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  checked.push(`${name} (${page.url().replace(/^https?:\/\/[^/]+/, '')})`);
  assert.deepEqual(
    bad.map((v) => `${v.id}: ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`),
    [],
    `accessibility of ${name}`,
  );
  assert.deepEqual(page.problems, [], `console of ${name}`);
}

async function screenshot(page, name) {
  if (shots) await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

async function signIn(page, m, username, next = '/') {
  await page.goto(`${m.base_url}${next}`);
  await page.getByLabel('User name').fill(username);
  await page.getByLabel('Password').fill(password(m, username));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState();
  assert.match(await page.locator('header').innerText(), /Signed in as/);
}

async function journey(name, body) {
  const started = Date.now();
  try {
    await body();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failures += 1;
    console.log(`FAIL ${name}\n${e.stack || e}`);
  }
}

// ---- the journeys ----

let requestUrl = '';

await journey('sign in: a wrong password is named in an error summary, then the right one works', async () => {
  const { page } = await person();
  await page.goto(EA.base_url);
  assert.match(page.url(), /\/sign-in/);
  await accessible(page, 'sign-in');
  await screenshot(page, 'sign-in');
  await page.getByLabel('User name').fill('analyst');
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const summary = page.locator('.error-summary');
  await summary.waitFor();
  assert.match(await summary.innerText(), /user name or password is not right/);
  assert.equal(await summary.locator('a').first().getAttribute('href'), '#username');
  assert.match(await page.title(), /^Error: /);
  await accessible(page, 'sign-in with an error');
  // The skip link is the first thing the keyboard reaches.
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to main content');
  await page.getByLabel('Password').fill(password(EA, 'analyst'));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/\/catalog/);
  // The session cookie is Secure and HttpOnly, and the browser kept it over http://127.0.0.1.
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'agora_session');
  assert.ok(session && session.httpOnly && session.secure && session.sameSite === 'Strict', JSON.stringify(cookies));
});

await journey('catalog: search with filters, then a product page with its profile and histograms', async () => {
  const { page } = await person();
  await signIn(page, EA, 'analyst', '/catalog');
  await accessible(page, 'catalog');
  await screenshot(page, 'catalog');
  await page.getByLabel('Search words').fill('residents');
  await page.getByLabel('Member', { exact: true }).selectOption('population-registry');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(/member=population-registry/);
  const results = page.locator('ul.results > li');
  assert.ok(await results.count() >= 1);
  for (const owner of await results.locator('p').first().allInnerTexts()) assert.match(owner, /population-registry/);
  await accessible(page, 'catalog search');
  // A search that finds nothing says what to do.
  await page.goto(`${EA.base_url}/catalog?q=zzzz-nothing`);
  assert.match(await page.locator('main').innerText(), /No product matches/);
  // The product page.
  await page.goto(`${EA.base_url}/catalog/population-registry/residents`);
  assert.match(await page.locator('h1').innerText(), /\S/);
  assert.ok(await page.locator('.histograms svg').count() >= 1, 'histograms on the product page');
  assert.ok(await page.locator('#chart-completeness').count() === 1);
  await page.locator('.histograms details summary').first().click();
  await accessible(page, 'product page');
  await screenshot(page, 'product');
  // A product the agency reads under the fraud-prevention agreement says so, and how to
  // query it; no "request access" for what it holds.
  await page.goto(`${EA.base_url}/catalog?q=income&member=tax-office`);
  const income = page.locator('ul.results > li', { hasText: 'annual_income' });
  assert.match(await income.innerText(), /reads it under agreement/);
  await page.goto(`${EA.base_url}/catalog/tax-office/annual_income`);
  const how = await page.locator('main').innerText();
  assert.match(how, /Your organisation reads it under agreement/);
  assert.doesNotMatch(how, /holds none in force/);
  // Column types and roles in words, the technical name beside them.
  assert.match(how, /whole number|text/);
  await accessible(page, 'product page under an agreement');
  // The owner's own page of the product says who reads it, under which agreement.
  const { page: owner } = await person();
  await signIn(owner, member('tax-office'), 'analyst', '/catalog/tax-office/annual_income');
  const own = await owner.locator('main').innerText();
  assert.match(own, /Who reads it/);
  assert.match(own, /employment-agency, for fraud prevention/);
  await accessible(owner, 'own product page with its readers');
});

await journey('access request: an incomplete form is refused field by field, then sent', async () => {
  const { page } = await person();
  await signIn(page, EA, 'analyst', '/catalog/population-registry/residents');
  await page.getByRole('link', { name: 'Request access' }).click();
  await page.waitForURL(/\/request$/);
  await accessible(page, 'request form');
  await page.getByRole('button', { name: 'Send the request' }).click();
  const summary = page.locator('.error-summary');
  await summary.waitFor();
  const text = await summary.innerText();
  assert.match(text, /Choose the purpose/);
  assert.match(text, /Choose at least one column/);
  // The summary's links lead to their fields.
  await summary.getByRole('link', { name: 'Choose the legal basis' }).click();
  assert.equal(new URL(page.url()).hash, '#legal_basis');
  assert.equal(await page.locator('#legal_basis').count(), 1);
  await accessible(page, 'request form with errors');
  await screenshot(page, 'request-errors');
  await page.getByLabel('official statistics').check();
  await page.getByLabel('Legal basis').selectOption('public_task');
  await page.getByLabel('Why do you need it?').fill('Monthly statistics of residents per municipality for the labour market report.');
  await page.getByLabel('aggregate', { exact: true }).check();
  await page.getByRole('checkbox', { name: 'municipality', exact: true }).check();
  await page.getByRole('checkbox', { name: 'sex', exact: true }).check();
  // Aggregate answers count people: the subject column is needed (no answer shows it).
  await page.getByRole('checkbox', { name: 'person_id', exact: true }).check();
  await page.getByRole('button', { name: 'Send the request' }).click();
  await page.waitForLoadState();
  assert.match(page.url(), /\/requests\/.+done=requested/, await page.locator('main').innerText());
  assert.match(await page.locator('main').innerText(), /Your request was sent to the owner/);
  await accessible(page, 'negotiation (requested)');
  await screenshot(page, 'request-sent');
  requestUrl = page.url().replace(/&done=.*/, '');
});

await journey('owner: an analyst may not answer, a steward approves', async () => {
  assert.ok(requestUrl, 'a request was sent');
  const id = new URL(requestUrl).pathname.split('/')[2];
  const { page: analyst } = await person();
  await signIn(analyst, REGISTRY, 'analyst', '/requests');
  await accessible(analyst, 'requests list');
  const own = `${REGISTRY.base_url}/requests/${id}?side=provider`;
  for (let i = 0; i < 100; i += 1) {
    const r = await analyst.goto(own);
    if (r.status() === 200) break;
    await analyst.waitForTimeout(100);
  }
  assert.match(await analyst.locator('main').innerText(), /A data steward of your organisation answers this/);
  const { page } = await person();
  await signIn(page, REGISTRY, 'steward', '/requests');
  await screenshot(page, 'requests');
  await page.goto(own);
  await accessible(page, 'negotiation (to answer)');
  await screenshot(page, 'answer');
  await page.getByRole('button', { name: /Approve/ }).click();
  await page.waitForURL(/done=approved/);
  assert.match(await page.locator('main').innerText(), /You approved the request/);
  await accessible(page, 'negotiation (approved)');
});

await journey('agreement: the consumer sees it in force, with its terms and both signatures', async () => {
  const { page } = await person();
  await signIn(page, EA, 'analyst', '/requests');
  let text = '';
  for (let i = 0; i < 100; i += 1) {
    await page.goto(requestUrl);
    text = await page.locator('main').innerText();
    if (/The agreement is in force/.test(text)) break;
    await page.waitForTimeout(100);
  }
  assert.match(text, /The agreement is in force/);
  assert.match(text, /Both Ed25519 signatures verify/);
  await accessible(page, 'agreement');
  await screenshot(page, 'agreement');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: /ODRL/ }).click(),
  ]);
  const odrl = JSON.parse(fs.readFileSync(await download.path(), 'utf8'));
  assert.ok(JSON.stringify(odrl).includes('odrl'));
});

await journey('query: a mistake is named next to the SQL; results page through and download as CSV and Parquet', async () => {
  const { page } = await person();
  await signIn(page, EA, 'analyst', '/query');
  await accessible(page, 'query workspace');
  await page.getByLabel('SQL query').fill('SELEC nothing');
  await page.getByRole('button', { name: 'Run query' }).click();
  await page.locator('.error-summary').waitFor();
  assert.equal(await page.locator('.error-summary a').first().getAttribute('href'), '#sql');
  await accessible(page, 'query with an error');
  await page.getByLabel('SQL query').fill('SELECT municipality, sex, count(*) AS residents FROM "population-registry".residents GROUP BY 1, 2 ORDER BY 1, 2');
  await page.getByRole('button', { name: 'Run query' }).click();
  await page.waitForLoadState();
  assert.equal(await page.locator('#results').count(), 1, await page.locator('main').innerText());
  assert.ok(await page.locator('table tbody tr').count() >= 2);
  assert.match(await page.locator('main').innerText(), /What your agreements hide/);
  await accessible(page, 'query results');
  await screenshot(page, 'query');
  const [csv] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download CSV' }).click(),
  ]);
  assert.match(fs.readFileSync(await csv.path(), 'utf8').split('\n')[0], /^municipality,sex,residents/);
  const [parquet] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download Parquet' }).click(),
  ]);
  assert.equal(parquet.suggestedFilename(), 'query-result.parquet');
  const bytes = fs.readFileSync(await parquet.path());
  assert.equal(bytes.subarray(0, 4).toString(), 'PAR1');
  assert.equal(bytes.subarray(bytes.length - 4).toString(), 'PAR1');
  // A page of rows, then the next.
  await page.getByLabel('SQL query').fill('SELECT person_id FROM "tax-office".annual_income');
  await page.getByRole('button', { name: 'Run query' }).click();
  await page.locator('#results').waitFor();
  await page.getByRole('button', { name: 'Next page' }).click();
  await page.locator('#results').waitFor();
  assert.match(await page.locator('main').innerText(), /Rows 51 to/);
});

await journey('revocation: a steward must give a reason, then the agreement stops applying', async () => {
  const { page } = await person();
  await signIn(page, EA, 'steward', '/requests');
  await page.goto(requestUrl);
  await page.getByRole('button', { name: 'Revoke the agreement' }).click();
  await page.locator('.error-summary').waitFor();
  assert.match(await page.locator('.error-summary').innerText(), /Enter the reason/);
  await accessible(page, 'revocation with an error');
  await page.getByLabel(/Revoke the agreement/).fill('The report is published.');
  await page.getByRole('button', { name: 'Revoke the agreement' }).click();
  await page.waitForURL(/done=ended/);
  assert.match(await page.locator('main').innerText(), /The report is published/);
  await page.goto(`${EA.base_url}/query`);
  await page.getByLabel('SQL query').fill('SELECT count(*) FROM "population-registry".residents');
  await page.getByRole('button', { name: 'Run query' }).click();
  await page.locator('.error-summary').waitFor();
  assert.match(await page.locator('.error-summary').innerText(), /agreement/);
  // The page offers the way to ask for one, not a command to type.
  assert.doesNotMatch(await page.locator('main').innerText(), /agora agreement request/);
  await page.getByRole('link', { name: 'Request access to residents from population-registry' }).click();
  await page.waitForURL(/\/catalog\/population-registry\/residents\/request$/);
});

await journey('negotiation: the owner offers other terms, the consumer asks for others, the owner rejects', async () => {
  const { page: analyst } = await person();
  await signIn(analyst, EA, 'analyst', '/catalog/population-registry/residents/request');
  await analyst.getByLabel('public health research').check();
  await analyst.getByLabel('Legal basis').selectOption('public_task');
  await analyst.getByLabel('Why do you need it?').fill('Long-term unemployment and health: a study with the city hospital.');
  await analyst.getByLabel('aggregate', { exact: true }).check();
  for (const c of ['person_id', 'sex', 'birth_date']) await analyst.getByRole('checkbox', { name: c, exact: true }).check();
  await analyst.getByLabel('Mask for birth_date').selectOption('year');
  await analyst.getByRole('button', { name: 'Send the request' }).click();
  await analyst.waitForLoadState();
  assert.match(analyst.url(), /done=requested/, await analyst.locator('main').innerText());
  const id = new URL(analyst.url()).pathname.split('/')[2];

  // The owner's steward offers other terms; an empty choice of columns is refused first.
  const { page: owner } = await person();
  await signIn(owner, REGISTRY, 'steward', '/requests');
  for (let i = 0; i < 100; i += 1) {
    const r = await owner.goto(`${REGISTRY.base_url}/requests/${id}?side=provider`);
    if (r.status() === 200) break;
    await owner.waitForTimeout(100);
  }
  await owner.getByRole('link', { name: 'Offer other terms' }).click();
  await owner.waitForURL(/\/offer/);
  await accessible(owner, 'offer form');
  for (const c of ['person_id', 'sex', 'birth_date']) await owner.getByRole('checkbox', { name: c, exact: true }).uncheck();
  await owner.getByRole('button', { name: 'Send the offer' }).click();
  await owner.locator('.error-summary').waitFor();
  assert.match(await owner.locator('.error-summary').innerText(), /Choose at least one column/);
  await accessible(owner, 'offer form with errors');
  for (const c of ['person_id', 'sex']) await owner.getByRole('checkbox', { name: c, exact: true }).check();
  await owner.getByLabel('Why these terms').fill('Birth dates are not needed for this study.');
  await owner.getByRole('button', { name: 'Send the offer' }).click();
  await owner.waitForURL(/done=offered/);

  // The consumer's steward asks for other terms, starting from the offer.
  const { page: steward } = await person();
  await signIn(steward, EA, 'steward', '/requests');
  let text = '';
  for (let i = 0; i < 100; i += 1) {
    await steward.goto(`${EA.base_url}/requests/${id}?side=consumer`);
    text = await steward.locator('main').innerText();
    if (/offers other terms/.test(text)) break;
    await steward.waitForTimeout(100);
  }
  assert.match(text, /Birth dates are not needed/);
  await accessible(steward, 'negotiation (offered)');
  await steward.getByRole('link', { name: 'Ask for other terms' }).click();
  await steward.waitForURL(/\/counter/);
  assert.ok(await steward.getByRole('checkbox', { name: 'sex', exact: true }).isChecked());
  assert.ok(!(await steward.getByRole('checkbox', { name: 'birth_date', exact: true }).isChecked()));
  await accessible(steward, 'counter-request form');
  await screenshot(steward, 'counter-request');
  await steward.getByRole('checkbox', { name: 'municipality', exact: true }).check();
  await steward.getByLabel('Why these terms').fill('Municipalities are needed to compare regions.');
  await steward.getByRole('button', { name: 'Send the request' }).click();
  await steward.waitForURL(/done=countered/);

  // The owner sees the new terms and rejects them, with a reason the consumer reads.
  for (let i = 0; i < 100; i += 1) {
    await owner.goto(`${REGISTRY.base_url}/requests/${id}?side=provider`);
    text = await owner.locator('main').innerText();
    if (/received a request with other terms/.test(text)) break;
    await owner.waitForTimeout(100);
  }
  assert.match(text, /Municipalities are needed/);
  await owner.getByLabel('Reject the request').fill('Municipality and sex together single people out in small places.');
  await owner.getByRole('button', { name: 'Reject the request' }).click();
  await owner.waitForURL(/done=ended/);
  for (let i = 0; i < 100; i += 1) {
    await analyst.goto(`${EA.base_url}/requests/${id}?side=consumer`);
    text = await analyst.locator('main').innerText();
    if (/single people out/.test(text)) break;
    await analyst.waitForTimeout(100);
  }
  assert.match(text, /Ended: .*single people out/);
  await accessible(analyst, 'negotiation (ended)');
});

await journey('administration: administrators see health, certificates and the trust list; others are refused', async () => {
  const { page } = await person();
  await signIn(page, EA, 'admin', '/admin');
  const text = await page.locator('main').innerText();
  // The trust list is valid, and each date says what it is the date of.
  assert.match(text, /valid — number \d+/i);
  assert.match(text, /Node certificate: expires/);
  assert.match(text, /The ecosystem's root certificate expires/);
  for (const m of eco.members) assert.ok(text.includes(m.id), m.id);
  await accessible(page, 'administration');
  await screenshot(page, 'admin');
  const { page: analyst } = await person();
  await signIn(analyst, EA, 'analyst', '/catalog');
  const r = await analyst.goto(`${EA.base_url}/admin`);
  assert.equal(r.status(), 403);
  await accessible(analyst, 'administration refused');
  const missing = await analyst.goto(`${EA.base_url}/no-such-page`);
  assert.equal(missing.status(), 404);
  await accessible(analyst, 'page not found');
});

await journey('auditor: the audit log filtered by purpose, one entry with its proof, the list as CSV; no page of data', async () => {
  const { page } = await person();
  await signIn(page, EA, 'auditor', '/');
  assert.match(page.url(), /\/audit$/);
  await page.getByLabel('Kind').selectOption('exchange');
  await page.getByLabel('Purpose').fill('job_matching');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForLoadState();
  const rows = page.locator('table tbody tr');
  assert.ok((await rows.count()) > 0, 'the job-matching exchanges are listed');
  assert.match(await rows.first().innerText(), /job_matching/);
  await accessible(page, 'audit log');
  await screenshot(page, 'audit');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'Download these entries as CSV' }).click(),
  ]);
  const csv = fs.readFileSync(await download.path(), 'utf8');
  assert.match(csv, /^index,at,kind,reference,actor/);
  assert.match(csv, /job_matching/);
  await rows.first().getByRole('link').click();
  await page.waitForLoadState();
  const text = await page.locator('main').innerText();
  assert.match(text, /Proof that it is in the log/);
  assert.match(text, /agora\/[a-z0-9-]+\/employment-agency/);
  await accessible(page, 'audit entry');
  const r = await page.goto(`${EA.base_url}/catalog`);
  assert.equal(r.status(), 403);
  await accessible(page, 'a page of data refused to an auditor');
  const bad = await page.goto(`${EA.base_url}/audit?from=2026-02-30`);
  assert.equal(bad.status(), 422);
  await accessible(page, 'audit filter error');
});

await journey('citizen: a resident signs in with a one-time code and sees who used their data, proven complete; the code works once', async () => {
  const c = eco.citizen;
  assert.ok(c, 'the demo issued a resident a one-time code');
  const portal = member(c.portal);
  const { page } = await person();
  await page.goto(`${portal.base_url}/citizen`);
  assert.match(page.url(), /\/citizen\/sign-in$/);
  await accessible(page, 'citizen sign-in');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('.error-summary').waitFor();
  assert.match(await page.locator('.error-summary').innerText(), /national identification number/);
  await accessible(page, 'citizen sign-in errors');
  await page.getByLabel('National identification number').fill(c.person_id);
  await page.getByLabel('One-time code').fill(c.code);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/\/citizen$/);
  const text = await page.locator('main').innerText();
  assert.match(text, /Who used your data/);
  assert.match(text, /fraud_prevention/);
  assert.match(text, /\(proven\)/);
  assert.match(text, /complete up to entry/);
  assert.match(text, /Holds records about you in:/);
  assert.doesNotMatch(text, /could not be checked/i);
  await accessible(page, 'citizen history');
  await screenshot(page, 'citizen');
  // Another resident's number in the address changes nothing: the session says whose.
  await page.goto(`${portal.base_url}/citizen?person_id=00000000000`);
  assert.match(await page.locator('main').innerText(), new RegExp(`ending in ${c.person_id.slice(-3)}\\.`));
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/\/citizen\/sign-in$/);
  // The code worked once.
  await page.getByLabel('National identification number').fill(c.person_id);
  await page.getByLabel('One-time code').fill(c.code);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('.error-summary').waitFor();
  assert.match(await page.locator('.error-summary').innerText(), /not right/);
  await accessible(page, 'citizen code refused');
});

await journey('publishing: a steward publishes a CSV file from the inbox, fixing what the form refuses', async () => {
  // A ;-separated file in the folder the demo's nodes accept from their stewards.
  const file = path.join(eco.inbox, `openings-${Date.now()}.csv`);
  fs.writeFileSync(file, 'opening_id;municipality;weekly_hours;posted_on\n'
    + Array.from({ length: 40 }, (_, i) => `${i + 1};${i % 2 ? 'Northport' : 'Eastvale'};${20 + (i % 20)};2026-11-${String(1 + (i % 28)).padStart(2, '0')}`).join('\n') + '\n');
  const { page: analyst } = await person();
  await signIn(analyst, EA, 'analyst', '/catalog');
  assert.equal(await analyst.getByRole('link', { name: 'Publish data' }).count(), 0, 'analysts have no Publish link');
  assert.equal((await analyst.goto(`${EA.base_url}/publish`)).status(), 403);

  const { page } = await person();
  await signIn(page, EA, 'steward', '/catalog');
  await page.getByRole('link', { name: 'Publish data' }).click();
  await page.waitForURL(/\/publish$/);
  await accessible(page, 'publish: where is the data');
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.locator('.error-summary').waitFor();
  assert.match(await page.locator('.error-summary').innerText(), /Enter where the data is/);
  // A file outside the allowed folders is refused.
  await page.getByLabel('File, folder or URL').fill('/etc/passwd');
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.locator('.error-summary').waitFor();
  assert.match(await page.locator('.error-summary').innerText(), /outside the folders/);
  // Without the delimiter the file is one column: the check says which delimiter to give.
  await page.getByLabel('File, folder or URL').fill(file);
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.locator('.error-summary').waitFor();
  assert.match(await page.locator('.error-summary').innerText(), /--delimiter ';'/);
  await accessible(page, 'publish: an error');
  await page.locator('details.details summary').click();
  await page.getByLabel('Delimiter').fill(';');
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.waitForSelector('h1:has-text("Describe the data")');
  assert.match(await page.locator('main').innerText(), /Found 4 columns/);
  await accessible(page, 'publish: describe the data');
  await screenshot(page, 'publish');
  const name = `openings_${Date.now()}`;
  await page.getByLabel('Name in SQL').fill(name);
  await page.getByLabel('Title').fill('Open positions of the agency');
  // Personal data needs a legal basis: the form says so at the field.
  await page.getByLabel(/^personal/).check();
  await page.getByRole('button', { name: 'Publish' }).click();
  await page.locator('.error-summary').waitFor();
  assert.match(await page.locator('.error-summary').innerText(), /legal basis/);
  await accessible(page, 'publish: describe, with an error');
  await page.getByLabel(/^internal/).check();
  await page.getByLabel('Keywords').fill('vacancies, hours');
  await page.getByLabel('job matching').check();
  await page.getByRole('button', { name: 'Publish' }).click();
  // The progress page refreshes itself until the profile is done.
  await page.waitForSelector('h1:has-text("Published")', { timeout: 30000 });
  await accessible(page, 'publish: published');
  await page.getByRole('link', { name: 'See it in the catalog' }).click();
  await page.waitForURL(new RegExp(`/catalog/employment-agency/${name}$`));
  const text = await page.locator('main').innerText();
  assert.match(text, /Open positions of the agency/);
  assert.match(text, /40 rows/);
});

await journey('without JavaScript: sign in, search and query still work', async () => {
  const { page } = await person({ javaScriptEnabled: false });
  await signIn(page, EA, 'analyst', '/catalog');
  await page.getByLabel('Search words').fill('vacancies');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(/q=vacancies/);
  assert.ok(await page.locator('ul.results > li').count() >= 1);
  await page.goto(`${EA.base_url}/query`);
  await page.getByLabel('SQL query').fill('SELECT 1 AS one');
  await page.getByRole('button', { name: 'Run query' }).click();
  await page.locator('#results').waitFor();
});

await browser.close();
console.log(`\naxe-core checked ${checked.length} pages:\n  ${checked.join('\n  ')}`);
if (failures > 0) {
  console.log(`\n${failures} journey(s) failed`);
  process.exit(1);
}
console.log('\nevery journey passed');
