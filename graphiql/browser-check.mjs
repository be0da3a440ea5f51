// Drives the IDE of a running server in headless Chromium with every non-local request
// aborted; tests/e2e/test_graphiql_browser.py runs it and checks what it reports.
//
//   node browser-check.mjs BASE_URL SCREENSHOT_PATH TYPED_KEY
//
// Prints one JSON object per line: {"step": "subscribed"} once the OrderUpdates subscription
// is open (the test then places an order and writes its id on stdin), then {"step": "done",
// ...} with what the page showed, the requests it aborted, CSP violations and page errors.
// Last, it types TYPED_KEY into the headers pane, runs "Welcome" with it and reports everything
// the browser stored (local and session storage, IndexedDB, cookies): no key may be in it.
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const [baseUrl, screenshotPath, typedKey] = process.argv.slice(2);
const TIMEOUT_MS = 30_000;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const report = (step, details = {}) => console.log(JSON.stringify({ step, ...details }));
const isLocal = (url) => ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(url).hostname);
const stdin = createInterface({ input: process.stdin });
const stdinLines = stdin[Symbol.asyncIterator]();

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ],
});
const aborted = [];
const pageErrors = [];
const framesReceived = [];
let page;
let context;
try {
  context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
  // Context-wide, so requests of the page's web workers are covered too.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (isLocal(url) || url.startsWith('data:') || url.startsWith('blob:')) return route.continue();
    aborted.push(url);
    return route.abort('blockedbyclient');
  });
  await context.routeWebSocket(/.*/, (socket) => {
    if (isLocal(socket.url())) return socket.connectToServer();
    aborted.push(socket.url());
    return socket.close();
  });
  await context.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (event) => {
      window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
    });
  });

  page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(message.text());
  });
  const sentFrames = [];
  page.on('websocket', (socket) => {
    socket.on('framesent', (frame) => sentFrames.push(String(frame.payload)));
    socket.on('framereceived', (frame) => framesReceived.push(String(frame.payload).slice(0, 300)));
  });

  const editorText = async (selector) =>
    (await page.locator(`${selector} .view-lines`).allInnerTexts()).join('\n').replace(/\u00a0/g, ' ');
  const runOperation = async (name) => {
    await page.locator('.graphiql-execute-button').click();
    await page.getByRole('menuitem', { name }).click();
  };

  const response = await page.goto(`${baseUrl}/graphql`);
  const csp = response.headers()['content-security-policy'];
  await page.locator('.graphiql-query-editor .view-lines').waitFor();
  await page.waitForFunction(() => document.querySelector('.graphiql-query-editor')?.innerText.includes('OrderUpdates'));
  const headers = await editorText('.graphiql-editor-tool');
  const operation = await editorText('.graphiql-query-editor');

  await runOperation('Welcome');
  await page.waitForFunction(() => document.querySelector('.graphiql-response')?.innerText.includes('"viewer"'));
  const welcome = await editorText('.graphiql-response');

  // The docs pane fills from introspection, which needs the prefilled key.
  await page.getByRole('button', { name: 'Show Documentation Explorer' }).click();
  await page.locator('.graphiql-doc-explorer').getByText('Root Types').waitFor();
  const docs = await page.locator('.graphiql-doc-explorer').innerText();

  await runOperation('OrderUpdates');
  // The subscription is live once graphql-ws has sent its "subscribe" message.
  const deadline = Date.now() + TIMEOUT_MS;
  while (!sentFrames.some((payload) => payload.includes('"subscribe"')) && Date.now() < deadline) {
    await page.waitForTimeout(100);
  }
  report('subscribed', { subscribeSent: sentFrames.some((p) => p.includes('"subscribe"')) });

  const { value: orderId } = await stdinLines.next();
  stdin.close();
  await page.waitForFunction(
    // Monaco wraps long lines, so a long id may span two: compare without whitespace.
    (id) => document.querySelector('.graphiql-response')?.innerText.replace(/\s/g, '').includes(id),
    orderId.trim(),
  );
  const event = await editorText('.graphiql-response');
  await page.screenshot({ path: screenshotPath });

  // Stop the subscription (the run button is its stop button now), type the other key over
  // the headers pane's content and run "Welcome" with it.
  await page.locator('.graphiql-execute-button').click();
  await page.waitForTimeout(500);
  await page.locator('.graphiql-editor-tool .view-lines').locator('visible=true').click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.press('Delete');
  // insertText, not type: Monaco would close the braces and quotes a second time.
  await page.keyboard.insertText(`{"Authorization": "Bearer ${typedKey}"}`);
  const typedHeaders = await editorText('.graphiql-editor-tool');
  await runOperation('Welcome');
  await page.waitForFunction(() => document.querySelector('.graphiql-response')?.innerText.includes('"LIVE"'));
  const typedWelcome = await editorText('.graphiql-response');
  await page.waitForTimeout(1_000); // GraphiQL debounces its tab-state writes
  const stored = await page.evaluate(async () => {
    const dump = (store) =>
      Object.fromEntries(Array.from({ length: store.length }, (_, i) => store.key(i)).map((k) => [k, store.getItem(k)]));
    const request = (r) => new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
    const databases = {};
    for (const { name } of await indexedDB.databases()) {
      const db = await request(indexedDB.open(name));
      for (const storeName of db.objectStoreNames) {
        const records = await request(db.transaction(storeName).objectStore(storeName).getAll());
        databases[`${name}/${storeName}`] = JSON.stringify(records);
      }
      db.close();
    }
    return { localStorage: dump(localStorage), sessionStorage: dump(sessionStorage), indexedDB: databases };
  });
  stored.cookies = await context.cookies();
  const cspViolations = await page.evaluate(() => window.cspViolations);
  report('done', {
    csp, headers, operation, welcome, docs, event, typedHeaders, typedWelcome, stored,
    aborted, cspViolations, pageErrors,
  });
} catch (error) {
  await page?.screenshot({ path: screenshotPath }).catch(() => {});
  report('failed', { error: String(error), aborted, pageErrors, framesReceived });
  process.exitCode = 1;
} finally {
  stdin.close();
  await browser.close();
}
