// What every client scenario shares: its arguments, plain HTTP GraphQL calls, and reporting.
// A scenario reads one JSON argument, writes JSON lines to stdout and exits 0; the pytest
// module (tests/e2e/test_js_clients.py) asserts on what it reports.
import { createInterface } from 'node:readline';

export const args = JSON.parse(process.argv[2] ?? '{}');
export const httpUrl = `${args.baseUrl}/graphql`;
export const wsUrl = httpUrl.replace(/^http/, 'ws');

export const SUBSCRIPTION = `subscription {
  orderStatusChanged { sequence previousState state order { id state } }
}`;

export const CREATE_ORDER = `mutation($amount: Decimal!) {
  createOrderByMass(input: {mass: {amount: $amount, unit: KG}}) { order { id state } userErrors { code } }
}`;

/** One GraphQL operation over HTTP with an API key; throws unless it answers data without errors. */
export async function graphql(key, query, variables = {}) {
  const response = await fetch(httpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (!response.ok || body.errors) {
    throw new Error(`HTTP ${response.status}: ${JSON.stringify(body)}`);
  }
  return body.data;
}

export async function placeOrder(key, kilograms = '25') {
  const { createOrderByMass } = await graphql(key, CREATE_ORDER, { amount: kilograms });
  if (createOrderByMass.userErrors.length) {
    throw new Error(JSON.stringify(createOrderByMass.userErrors));
  }
  return createOrderByMass.order.id;
}

export function report(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

const stdin = createInterface({ input: process.stdin });
const stdinLines = stdin[Symbol.asyncIterator]();

/** Tell the test we reached `step`, and wait until it writes a line back (it acts meanwhile). */
export async function handOver(step) {
  report({ waiting: step });
  await stdinLines.next();
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolve with `promise`, or reject after `ms` saying what was awaited. */
export function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Run a scenario: report its result, or its failure with exit code 1; never hang. */
export async function run(scenario) {
  try {
    report({ result: await within(60_000, 'the scenario', scenario()) });
    stdin.close();
    process.exit(0);
  } catch (error) {
    report({ failure: String(error?.stack ?? error) });
    process.exit(1);
  }
}
