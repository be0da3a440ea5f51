// The GraphQL-over-HTTP spec audit of the `graphql-http` package (serverAudits), with an API
// key on every request so that the audits reach GraphQL rather than the 401 in front of it.
import { serverAudits } from 'graphql-http';

import { args, httpUrl, run } from './lib.mjs';

function fetchWithKey(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${args.key}`);
  return fetch(input, { ...init, headers });
}

async function audit() {
  const results = [];
  for (const { fn } of serverAudits({ url: httpUrl, fetchFn: fetchWithKey })) {
    const result = await fn();
    results.push({
      id: result.id,
      name: result.name,
      status: result.status,
      ...(result.status === 'ok' ? {} : { reason: result.reason }),
    });
  }
  return results;
}

run(audit);
