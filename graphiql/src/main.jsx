// The GraphiQL IDE served at GET /graphql. Everything it loads comes from this server: the
// page passes its settings in a JSON block (a strict CSP forbids inline scripts) and the
// Monaco editor's web workers are bundled beside this file.
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { GraphiQL } from 'graphiql';
import { createRoot } from 'react-dom/client';
import 'graphiql/style.css';
import './page.css';

const assetsBase = new URL('.', document.currentScript.src);

// Monaco asks for a worker by label; each is its own bundle here (see build.mjs).
globalThis.MonacoEnvironment = {
  getWorker(_workerId, label) {
    const name = label === 'json' || label === 'graphql' ? label : 'editor';
    return new Worker(new URL(`${name}.worker.js`, assetsBase), { name: label });
  },
};

// API keys never reach the browser's storage. GraphiQL keeps tabs and history in
// localStorage, and @graphiql/plugin-history saves each run's headers whatever
// `shouldPersistHeaders` says: every value goes through here, `headers` dropped at any depth,
// and the persisted headers pane itself (`graphiql:headers`) is never written.
function withoutHeaders(value) {
  if (Array.isArray(value)) return value.map(withoutHeaders);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([name]) => name !== 'headers')
      .map(([name, item]) => [name, withoutHeaders(item)]),
  );
}

function scrubbed(text) {
  try {
    return JSON.stringify(withoutHeaders(JSON.parse(text)));
  } catch {
    return text; // not JSON (a flex size, a theme name): nothing of a request in it
  }
}

const HEADERS_KEY = /(^|:)headers$/;

const headerFreeStorage = {
  getItem(key) {
    const value = window.localStorage.getItem(key);
    return value === null || HEADERS_KEY.test(key) ? null : scrubbed(value);
  },
  setItem(key, value) {
    if (HEADERS_KEY.test(key)) return;
    window.localStorage.setItem(key, scrubbed(value));
  },
  removeItem(key) {
    window.localStorage.removeItem(key);
  },
  clear() {
    window.localStorage.clear();
  },
  get length() {
    return window.localStorage.length;
  },
};

const config = JSON.parse(document.getElementById('graphiql-config').textContent);
const endpoint = new URL(config.endpoint, window.location.href);
const subscriptionUrl = new URL(endpoint);
subscriptionUrl.protocol = endpoint.protocol === 'https:' ? 'wss:' : 'ws:';

// Subscriptions go over graphql-ws to the same /graphql; the toolkit sends the headers
// pane as the connection_init payload, where the server reads the Authorization header.
const fetcher = createGraphiQLFetcher({
  url: endpoint.href,
  subscriptionUrl: subscriptionUrl.href,
  enableIncrementalDelivery: false,
});

createRoot(document.getElementById('graphiql')).render(
  <GraphiQL
    fetcher={fetcher}
    storage={headerFreeStorage}
    shouldPersistHeaders={false}
    defaultQuery={config.exampleOperation}
    initialHeaders={config.headers ?? undefined}
    defaultHeaders={config.headers ?? undefined}
    defaultEditorToolsVisibility={config.headers ? 'headers' : true}
  />,
);
