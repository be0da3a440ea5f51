// Apollo's legacy `subscriptions-transport-ws` client (the graphql-ws subprotocol), still found
// in older frontends: it must receive order events too.
import subscriptionsTransportWs from 'subscriptions-transport-ws';
import WebSocket from 'ws';

import { SUBSCRIPTION, args, placeOrder, run, sleep, within, wsUrl } from './lib.mjs';

const { SubscriptionClient } = subscriptionsTransportWs;

async function receivesOrderEvents() {
  const client = new SubscriptionClient(
    wsUrl,
    { connectionParams: { apiKey: args.key }, reconnect: false },
    WebSocket,
  );
  const changes = [];
  let orderId;
  let fulfilled;
  const done = new Promise((resolve, reject) => {
    fulfilled = resolve;
    client.onError((error) => reject(new Error(`socket error: ${error.message ?? error}`)));
  });
  const subscription = client.request({ query: SUBSCRIPTION }).subscribe({
    next: ({ data, errors }) => {
      if (errors) changes.push({ errors });
      else changes.push(data.orderStatusChanged);
      if (changes.some((c) => c.order?.id === orderId && c.state === 'FULFILLED')) fulfilled();
    },
  });
  await within(10_000, 'connection_ack', new Promise((resolve) => client.onConnected(resolve)));
  await sleep(500); // the subscription is registered once the server has read `start`
  orderId = await placeOrder(args.key);
  await within(20_000, 'FULFILLED', done);
  subscription.unsubscribe(); // sends `stop`
  client.close();
  const mine = changes.filter((c) => c.order?.id === orderId);
  return {
    orderId,
    states: mine.map((c) => [c.previousState, c.state]),
    errors: changes.filter((c) => c.errors),
  };
}

run(receivesOrderEvents);
