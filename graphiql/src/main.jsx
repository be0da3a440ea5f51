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
    defaultQuery={config.exampleOperation}
    initialHeaders={config.headers ?? undefined}
    defaultHeaders={config.headers ?? undefined}
    defaultEditorToolsVisibility={config.headers ? 'headers' : true}
  />,
);
