"use strict";
// Node's @socket.io/redis-emitter 5 publishing to a test cluster, for
// tests/cluster/test_node_cluster.py: a process that serves no clients.
// Usage: node tests/cluster/node/emit.js '<JSON list of steps>'
// Environment: CLUSTER_KEY (the channel key), REDIS_URL.
// A step is {nsp?, to?, event, args} (an emit), {nsp?, to?, socketsJoin: room}
// or {nsp?, to?, disconnectSockets: true}. Steps are published in order on one
// connection; the process exits once Redis took them all.

const { Emitter } = require("@socket.io/redis-emitter");
const { createClient } = require("redis");

async function main() {
  const steps = JSON.parse(process.argv[2] || "[]");
  const client = createClient({ url: process.env.REDIS_URL || "redis://127.0.0.1:6379/0" });
  await client.connect();
  const emitter = new Emitter(client, { key: process.env.CLUSTER_KEY || "socket.io" });
  for (const step of steps) {
    const nsp = emitter.of(step.nsp || "/");
    const target = step.to == null ? nsp : nsp.to(step.to);
    if (step.socketsJoin !== undefined) target.socketsJoin(step.socketsJoin);
    else if (step.disconnectSockets) target.disconnectSockets();
    else target.emit(step.event, ...(step.args || []));
  }
  await client.quit(); // (QUIT runs after the queued PUBLISHes)
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
