// Cumulocity's own JavaScript client (@c8y/client), used against fleetgate as a
// Cumulocity user would use it. Run by tests/e2e/test_c8y_client.py with the stack's
// address and accounts in the environment; it fails (exit status 1, the failed check on
// stderr) at the first answer that the client cannot take, and prints what the Python
// side checks further (the device's credentials) as JSON on stdout.
//
//   C8Y_BASEURL  C8Y_TENANT  C8Y_USER  C8Y_PASSWORD  C8Y_BOOTSTRAP_USER  C8Y_BOOTSTRAP_PASSWORD
//   C8Y_RUN      a prefix that makes this run's names and ids its own

'use strict';

const assert = require('node:assert/strict');
const { Client } = require('@c8y/client');

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const baseUrl = env('C8Y_BASEURL');
const tenant = env('C8Y_TENANT');
const run = env('C8Y_RUN');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The client throws {res, data} for an error status: say which call and what fleetgate said.
async function step(name, call) {
  try {
    return await call();
  } catch (error) {
    if (error && error.res) {
      const detail = JSON.stringify(error.data);
      throw new Error(`${name}: HTTP ${error.res.status} ${error.res.url}: ${detail}`);
    }
    throw new Error(`${name}: ${error && error.stack ? error.stack : error}`);
  }
}

async function inventory(client) {
  const { inventory: inv } = client;
  const made = [];
  for (let i = 0; i < 7; i++) {
    const { data, res } = await step('inventory.create', () =>
      inv.create({ name: `${run}-thing-${i}`, type: `${run}_thing`, c8y_Note: { n: i } }),
    );
    assert.equal(res.status, 201);
    assert.equal(typeof data.id, 'string');
    made.push(data);
  }

  // A read-modify-write round trip: the whole object, read-only fields included, goes back.
  const { data: read } = await step('inventory.detail', () => inv.detail(made[0].id));
  assert.ok(read.creationTime && read.lastUpdated && read.self && read.childDevices);
  read.c8y_Note = { n: 100 };
  read.name = `${run}-renamed`;
  const { data: updated } = await step('inventory.update (round trip)', () => inv.update(read));
  assert.equal(updated.name, `${run}-renamed`);
  assert.deepEqual(updated.c8y_Note, { n: 100 });

  // A partial update: {id, fragment}, the way the client's documentation shows it.
  const { data: partial } = await step('inventory.update (partial)', () =>
    inv.update({ id: made[1].id, c8y_Note: { n: 101 } }),
  );
  assert.deepEqual(partial.c8y_Note, { n: 101 });

  // A body naming another object than the URL is refused, as Cumulocity refuses it.
  const refused = await client.core.fetch(`/inventory/managedObjects/${made[1].id}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ id: made[2].id, c8y_Note: { n: -1 } }),
  });
  assert.equal(refused.status, 422);
  const { data: kept } = await step('inventory.detail', () => inv.detail(made[1].id));
  assert.deepEqual(kept.c8y_Note, { n: 101 }, 'a refused update changes nothing');
  const { data: other } = await step('inventory.detail', () => inv.detail(made[2].id));
  assert.deepEqual(other.c8y_Note, { n: 2 }, 'the object the body named is untouched');

  // Paging: three pages of three, the totals, and next/prev through the client's Paging.
  const filter = { type: `${run}_thing`, pageSize: 3, withTotalElements: true };
  const first = await step('inventory.list', () => inv.list(filter));
  assert.equal(first.data.length, 3);
  assert.equal(first.paging.totalElements, 7);
  assert.equal(first.paging.currentPage, 1);
  const second = await step('paging.next', () => first.paging.next());
  assert.equal(second.data.length, 3);
  assert.equal(second.paging.currentPage, 2);
  const third = await step('paging.next', () => second.paging.next());
  assert.equal(third.data.length, 1);
  const back = await step('paging.prev', () => third.paging.prev());
  assert.equal(back.paging.currentPage, 2);
  const seen = new Set([...first.data, ...second.data, ...third.data].map((mo) => mo.id));
  assert.equal(seen.size, 7);
  const pages = await step('inventory.list', () =>
    inv.list({ type: `${run}_thing`, pageSize: 3, withTotalPages: true }),
  );
  assert.equal(pages.paging.totalPages, 3);
  assert.equal(pages.paging.totalElements, 7);

  const { data: count } = await step('inventory.count', () => inv.count({ type: `${run}_thing` }));
  assert.equal(count, 7);
  const { data: none } = await step('inventory.count', () => inv.count({ type: `${run}_none` }));
  assert.equal(none, 0);

  const gone = made.pop();
  await step('inventory.delete', () => inv.delete(gone.id));
  const { data: fewer } = await step('inventory.count', () => inv.count({ type: `${run}_thing` }));
  assert.equal(fewer, 6);
  return made;
}

async function identityAndOperations(client) {
  const serial = `${run}-dev`;
  const { data: device } = await step('inventory.create (device)', () =>
    client.inventory.create({ name: serial, c8y_IsDevice: {} }),
  );
  const { data: ext, res } = await step('identity.create', () =>
    client.identity.create({
      type: 'c8y_Serial',
      externalId: serial,
      managedObject: { id: device.id },
    }),
  );
  assert.equal(res.status, 201);
  assert.equal(ext.externalId, serial);
  const { data: found } = await step('identity.detail', () =>
    client.identity.detail({ type: 'c8y_Serial', externalId: serial }),
  );
  assert.equal(String(found.managedObject.id), device.id);
  const { data: ids } = await step('identity.list', () => client.identity.list(device.id));
  assert.deepEqual(
    ids.map((e) => e.externalId),
    [serial],
  );

  // The device declares what it supports (an operator's read-modify-write here).
  const { data: current } = await step('inventory.detail', () => client.inventory.detail(device.id));
  current.c8y_SupportedOperations = ['c8y_Restart'];
  await step('inventory.update (supported operations)', () => client.inventory.update(current));

  const { data: operation, res: created } = await step('operation.create', () =>
    client.operation.create({ deviceId: device.id, description: 'restart', c8y_Restart: {} }),
  );
  assert.equal(created.status, 201);
  assert.equal(operation.status, 'PENDING');
  const { data: listed, paging } = await step('operation.list', () =>
    client.operation.list({ deviceId: device.id, withTotalElements: true, pageSize: 10 }),
  );
  assert.deepEqual(
    listed.map((o) => o.id),
    [operation.id],
  );
  assert.equal(paging.totalElements, 1);
  const { data: failed } = await step('operation.update', () =>
    client.operation.update({ id: operation.id, status: 'FAILED', failureReason: 'by the test' }),
  );
  assert.equal(failed.status, 'FAILED');
  const { data: detail } = await step('operation.detail', () => client.operation.detail(operation.id));
  assert.equal(detail.failureReason, 'by the test');
}

async function binaries(client) {
  const content = Buffer.from(`${run}: firmware bytes\n`.repeat(100));
  const { data: stored, res } = await step('inventoryBinary.create', () =>
    client.inventoryBinary.create(content, {
      name: `${run}.bin`,
      type: 'application/octet-stream',
      fileName: `${run}.bin`,
    }),
  );
  assert.equal(res.status, 201);
  assert.equal(stored.length, content.length);
  const listed = await step('inventoryBinary.list', () =>
    client.inventoryBinary.list({ pageSize: 100, withTotalElements: true }),
  );
  assert.ok(listed.data.some((b) => b.id === stored.id));
  assert.ok(listed.paging.totalElements >= 1);
  const download = await step('inventoryBinary.download', () =>
    client.inventoryBinary.download(stored.id),
  );
  assert.ok(Buffer.from(await download.arrayBuffer()).equals(content));
  await step('inventoryBinary.delete', () => client.inventoryBinary.delete(stored.id));
}

async function registration(client) {
  const id = `${run}-reg`;
  const boot = {
    basicAuth: { user: `${tenant}/${env('C8Y_BOOTSTRAP_USER')}`, pass: env('C8Y_BOOTSTRAP_PASSWORD') },
  };
  const { data: request } = await step('deviceRegistration.create', () =>
    client.deviceRegistration.create({ id }),
  );
  assert.equal(request.status, 'WAITING_FOR_CONNECTION');
  // The device asks: not accepted yet, so 404 (what the client's own deviceBootstrap polls on).
  const early = await client.deviceRegistration.bootstrap(id, boot).then(
    () => null,
    (error) => error,
  );
  assert.ok(early && early.res, 'credentials before acceptance must fail');
  assert.equal(early.res.status, 404);
  const { data: pending } = await step('deviceRegistration.detail', () =>
    client.deviceRegistration.detail(id),
  );
  assert.equal(pending.status, 'PENDING_ACCEPTANCE');
  const { data: listed } = await step('deviceRegistration.list', () =>
    client.deviceRegistration.list({ pageSize: 100 }),
  );
  assert.ok(listed.some((r) => r.id === id));
  const { data: accepted } = await step('deviceRegistration.accept', () =>
    client.deviceRegistration.accept(id),
  );
  assert.equal(accepted.status, 'ACCEPTED');
  let credentials = null;
  for (let attempt = 0; attempt < 100 && credentials === null; attempt++) {
    credentials = await client.deviceRegistration.bootstrap(id, boot).then(
      ({ data }) => data,
      async (error) => {
        if (!error.res || error.res.status !== 404) throw error;
        await sleep(200);
        return null;
      },
    );
  }
  assert.ok(credentials, 'no credentials after acceptance');
  assert.equal(credentials.tenantId, tenant);
  assert.equal(credentials.username, `device_${id}`);
  return { id, ...credentials };
}

async function main() {
  const client = await step('Client.authenticate', () =>
    Client.authenticate(
      { tenant, user: env('C8Y_USER'), password: env('C8Y_PASSWORD') },
      baseUrl,
    ),
  );
  assert.equal(client.core.tenant, tenant);
  const { data: me } = await step('user.current', () => client.user.current());
  assert.equal(me.userName, env('C8Y_USER'));

  await inventory(client);
  await identityAndOperations(client);
  await binaries(client);
  const device = await registration(client);
  process.stdout.write(`${JSON.stringify({ device })}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
