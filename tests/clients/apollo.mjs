// Apollo Client 4 as a frontend uses it: HttpLink for queries and mutations, GraphQLWsLink for
// subscriptions, one normalized cache. A watched `order(id)` query must move from PLACED to
// FULFILLED through the cache alone: the subscription's `order { id state }` updates the
// cached Order, and no query is sent again.
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

import { args, graphql, httpUrl, run, sleep, within, wsUrl } from './lib.mjs';

// GraphQLWsLink tests `instanceof WebSocket` on what the socket gives it: without a global
// WebSocket (Node 20 has none) every `error` message became "ReferenceError: WebSocket is not
// defined". Browsers have one; a Node app sets it, as here.
globalThis.WebSocket ??= WebSocket;

const ORDER_EVENTS = gql`
  subscription OrderEvents {
    orderStatusChanged { sequence state order { id state } }
  }
`;
const UNKNOWN_FIELD = gql`
  subscription Broken {
    orderStatusChanged { noSuchField }
  }
`;
const CREATE_ORDER = gql`
  mutation CreateOrder($portfolioId: ID!) {
    createOrderByMass(input: {mass: {amount: "1", unit: T}, portfolioId: $portfolioId}) {
      order { id state }
      userErrors { code message }
    }
  }
`;
const ORDER = gql`
  query Order($id: ID!) {
    order(id: $id) { id state }
  }
`;
const ADD_CREDITS = `mutation($projectId: ID!) {
  addCreditBatch(input: {projectId: $projectId, quantity: {amount: "5", unit: T},
                         serialPrefix: "APOLLO", vintage: 2025}) {
    creditBatch { id } userErrors { code message }
  }
}`;

async function watchedOrderIsFulfilledThroughTheCache() {
  const httpOperations = [];
  const http = new HttpLink({
    uri: httpUrl,
    headers: { authorization: `Bearer ${args.key}` },
    fetch: (url, init) => {
      httpOperations.push(JSON.parse(init.body).operationName);
      return fetch(url, init);
    },
  });
  const socket = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { apiKey: args.key },
    retryAttempts: 0,
  });
  const link = ApolloLink.split(
    ({ query }) => {
      const definition = getMainDefinition(query);
      return definition.kind === 'OperationDefinition' && definition.operation === 'subscription';
    },
    new GraphQLWsLink(socket),
    http,
  );
  const client = new ApolloClient({ link, cache: new InMemoryCache() });

  const events = [];
  const eventSubscription = client.subscribe({ query: ORDER_EVENTS }).subscribe({
    next: ({ data, error }) => events.push(error ? { error: String(error) } : data.orderStatusChanged),
  });
  await sleep(500); // the subscription is registered once the server has read it

  // A document the server refuses: its `error` message reaches the app as GraphQL errors.
  const refused = await within(
    10_000,
    'the refused subscription to end with its errors',
    new Promise((resolve) => {
      client.subscribe({ query: UNKNOWN_FIELD }).subscribe({
        next: ({ error }) => error && resolve(error),
        error: (error) => resolve(error),
      });
    }),
  );
  const refusal = {
    name: refused.name,
    codes: (refused.errors ?? []).map((error) => error.extensions?.code),
  };

  // The order's portfolio has no stock yet, so it stays PLACED until credits arrive.
  const created = await client.mutate({
    mutation: CREATE_ORDER,
    variables: { portfolioId: args.portfolioId },
  });
  const payload = created.data.createOrderByMass;
  if (payload.userErrors.length) throw new Error(JSON.stringify(payload.userErrors));
  const orderId = payload.order.id;

  const states = [];
  let seen;
  const watch = client.watchQuery({ query: ORDER, variables: { id: orderId } }).subscribe({
    next: ({ data }) => {
      const state = data?.order?.state;
      if (state && states.at(-1) !== state) states.push(state);
      seen?.();
    },
  });
  const reached = (state) =>
    within(
      20_000,
      `the watched order to be ${state} (states so far: ${states})`,
      new Promise((resolve) => {
        seen = () => states.includes(state) && resolve();
        seen();
      }),
    );
  await reached('PLACED');

  await graphql(args.adminKey, ADD_CREDITS, { projectId: args.projectId });
  await reached('FULFILLED');
  await sleep(500); // room for a refetch, were the cache update incomplete

  watch.unsubscribe();
  eventSubscription.unsubscribe();
  await socket.dispose();
  client.stop();
  return {
    refusal,
    orderId,
    states,
    httpOperations,
    eventStates: events.filter((e) => e.order?.id === orderId).map((e) => e.state),
    cachedOrder: client.cache.extract()[`Order:${orderId}`],
  };
}

run(watchedOrderIsFulfilledThroughTheCache);
