// The official `graphql-ws` client (graphql-transport-ws), as Apollo, urql and GraphiQL use it.
// Scenarios: subscribe | bad-key | revoked | suspended | pings.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

import {
  SUBSCRIPTION,
  args,
  graphql,
  handOver,
  placeOrder,
  run,
  sleep,
  within,
  wsUrl,
} from './lib.mjs';

// The server starts the subscription on reading the subscribe message; the protocol has no
// acknowledgement of it, so give it a moment before placing the order it should see.
const SETTLE_MS = 500;

function connect(apiKey) {
  const closes = [];
  const pings = [];
  let connected;
  let closed;
  const connectedOnce = new Promise((resolve) => (connected = resolve));
  const closedOnce = new Promise((resolve) => (closed = resolve));
  const client = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { apiKey },
    retryAttempts: 0,
    on: {
      connected: () => connected(),
      ping: (received) => pings.push(received ? 'from server' : 'from client'),
      pong: (received) => pings.push(received ? 'pong from server' : 'pong to server'),
      closed: (event) => {
        closes.push({ code: event.code, reason: event.reason });
        closed();
      },
    },
  });
  return { client, closes, pings, connectedOnce, closedOnce };
}

/** Subscribe to every order change; resolves `ended` with how the subscription ended. */
function watchOrders(client) {
  const changes = [];
  const waiters = [];
  let unsubscribe;
  const ended = new Promise((resolve) => {
    unsubscribe = client.subscribe(
      { query: SUBSCRIPTION },
      {
        next: ({ data, errors }) => {
          if (errors) changes.push({ errors });
          else changes.push(data.orderStatusChanged);
          for (const waiter of waiters) waiter();
        },
        error: (error) => resolve({ error: { code: error.code, reason: error.reason } }),
        complete: () => resolve({ complete: true }),
      },
    );
  });
  /** Wait until a change of `orderId` reaches `state`. */
  const reached = (orderId, state, ms = 20_000) =>
    within(
      ms,
      `${state} of ${orderId}`,
      new Promise((resolve) => {
        const check = () => {
          if (changes.some((c) => c.order?.id === orderId && c.state === state)) resolve();
        };
        waiters.push(check);
        check();
      }),
    );
  return { changes, ended, reached, unsubscribe };
}

const statesOf = (changes, orderId) =>
  changes.filter((c) => c.order?.id === orderId).map((c) => [c.previousState, c.state]);

async function subscribe() {
  const { client, closes, connectedOnce, closedOnce } = connect(args.key);
  const orders = watchOrders(client);
  await within(10_000, 'connection_ack', connectedOnce);
  await sleep(SETTLE_MS);
  const orderId = await placeOrder(args.key);
  await orders.reached(orderId, 'FULFILLED');
  orders.unsubscribe(); // sends `complete`
  const ended = await within(5_000, 'the subscription to end', orders.ended);
  await client.dispose();
  await within(5_000, 'the socket to close', closedOnce);
  const sequences = orders.changes.filter((c) => c.order?.id === orderId).map((c) => c.sequence);
  return { orderId, states: statesOf(orders.changes, orderId), sequences, ended, closes };
}

async function badKey() {
  const { client, closes } = connect('cg_test_not-a-real-key');
  const orders = watchOrders(client);
  const ended = await within(10_000, 'the refusal', orders.ended);
  await client.dispose();
  return { ended, closes, changes: orders.changes };
}

/** Stream with `key`, let `cutOff` end its access, and watch the socket close. `otherKey`, of
 * the same account, places the orders; after a suspension it can place none. */
async function losesAccess(key, cutOff, { ordersAfter }) {
  const { client, closes, connectedOnce } = connect(key);
  const orders = watchOrders(client);
  await within(10_000, 'connection_ack', connectedOnce);
  await sleep(SETTLE_MS);
  const before = await placeOrder(args.otherKey);
  await orders.reached(before, 'FULFILLED');

  await cutOff();
  const cutAt = Date.now();
  const ended = await within(10_000, 'the socket to close', orders.ended);
  const closedAfterMs = Date.now() - cutAt;
  const changesAtClose = orders.changes.length;

  // Nothing more arrives, and the same client cannot start again with that key.
  if (ordersAfter) await placeOrder(args.otherKey);
  await sleep(1_500);
  const again = watchOrders(client);
  const againEnded = await within(10_000, 'a new subscription to be refused', again.ended);
  await client.dispose();
  return {
    statesBefore: statesOf(orders.changes, before),
    ended,
    closedAfterMs,
    changesAfterClose: orders.changes.length - changesAtClose + again.changes.length,
    againEnded,
    closes,
  };
}

const CREATE_KEY = `mutation($name: String!) {
  createApiKey(input: {name: $name}) { secret apiKey { id } userErrors { code } }
}`;
const REVOKE_KEY = `mutation($id: ID!) {
  revokeApiKey(input: {id: $id}) { apiKey { revokedAt } userErrors { code } }
}`;

async function revoked() {
  const { createApiKey } = await graphql(args.adminKey, CREATE_KEY, { name: 'graphql-ws revoked' });
  const revoke = async () => {
    const { revokeApiKey } = await graphql(args.adminKey, REVOKE_KEY, {
      id: createApiKey.apiKey.id,
    });
    if (!revokeApiKey.apiKey?.revokedAt) throw new Error(JSON.stringify(revokeApiKey));
  };
  return losesAccess(createApiKey.secret, revoke, { ordersAfter: true });
}

async function suspended() {
  // The test suspends the account (with the CLI) while we wait.
  return losesAccess(args.key, () => handOver('suspend'), { ordersAfter: false });
}

/** The client answers the server's pings by itself, so the socket outlives many of them and
 * still delivers events. */
async function pings() {
  const { client, closes, pings, connectedOnce } = connect(args.key);
  const orders = watchOrders(client);
  await within(10_000, 'connection_ack', connectedOnce);
  await sleep(args.waitMs);
  const orderId = await placeOrder(args.key);
  await orders.reached(orderId, 'FULFILLED');
  orders.unsubscribe();
  await client.dispose();
  return { pings, closesBeforeDispose: closes, states: statesOf(orders.changes, orderId) };
}

const scenarios = { subscribe, 'bad-key': badKey, revoked, suspended, pings };
run(scenarios[args.scenario]);
