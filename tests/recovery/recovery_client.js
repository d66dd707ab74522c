"use strict";
// One connection state recovery scenario with the official socket.io-client, through a TCP proxy
// that can cut the connection like a lost network. Prints one JSON line with what the client saw.
//
// Usage: node tests/recovery/recovery_client.js '<json>' with
//   port        the server's port (the client connects through the proxy)
//   transports  socket.io-client's transports option
//   room, count, intervalMs   the server streams "n" 1..count to room, then "done"
//   cutAfter    cut when "n" == cutAfter arrives: from then on, every byte of the existing TCP
//               connections is dropped in both directions (neither side is told; each notices by
//               its heartbeat), and new connections are refused for outageMs (a long-polling
//               client opens one per request, so the outage is what it notices)
//   outageMs
//   waitDone    wait for "done" after reconnecting (false when the session is expected lost)
//   timeoutMs   overall deadline

const net = require("net");
const { io } = require("socket.io-client");

function startProxy(targetPort) {
  const pairs = new Set();
  let refuseUntil = 0;
  const server = net.createServer((client) => {
    if (Date.now() < refuseUntil) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, "127.0.0.1");
    const pair = { client, upstream, cut: false };
    pairs.add(pair);
    client.on("data", (chunk) => {
      if (!pair.cut) upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (!pair.cut) client.write(chunk);
    });
    // When one side gives up on a connection, the other end goes too (after a cut, that is when a
    // heartbeat ran out): the proxy holds no half-dead connection forever.
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const sock of [client, upstream]) {
      sock.on("close", end);
      sock.on("error", end);
    }
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({
        port: server.address().port,
        cut(outageMs) {
          for (const pair of pairs) pair.cut = true;
          refuseUntil = Date.now() + outageMs;
        },
        close() {
          server.close();
          for (const pair of pairs) {
            pair.client.destroy();
            pair.upstream.destroy();
          }
        },
      });
    });
  });
}

function waitUntil(predicate, what, deadline) {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (predicate()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(check, 10);
    };
    check();
  });
}

async function main() {
  const cfg = JSON.parse(process.argv[2]);
  const deadline = Date.now() + (cfg.timeoutMs || 15000);
  const proxy = await startProxy(cfg.port);
  const seen = { connects: [], disconnects: [], received: [], offsets: [], receivedAtDisconnect: [], done: false };
  const socket = io(`http://127.0.0.1:${proxy.port}`, {
    transports: cfg.transports,
    reconnectionDelay: 200,
    reconnectionDelayMax: 200,
    randomizationFactor: 0,
    timeout: 5000,
  });
  let cut = false;
  socket.on("connect", () => seen.connects.push({ sid: socket.id, recovered: socket.recovered }));
  socket.on("disconnect", (reason) => {
    seen.disconnects.push(reason);
    seen.receivedAtDisconnect.push(seen.received.length);
  });
  socket.on("n", (n, offset) => {
    seen.received.push(n);
    seen.offsets.push(offset === undefined ? null : offset);
    if (n === cfg.cutAfter && !cut) {
      cut = true;
      proxy.cut(cfg.outageMs);
    }
  });
  socket.on("done", () => {
    seen.done = true;
  });
  try {
    await waitUntil(() => seen.connects.length === 1, "the first connect", deadline);
    seen.before = await socket.timeout(5000).emitWithAck("whoami");
    await socket.timeout(5000).emitWithAck("join", cfg.room, "ann");
    await socket.timeout(5000).emitWithAck("stream", cfg.room, cfg.count, cfg.intervalMs);
    await waitUntil(() => seen.connects.length === 2, "the reconnection", deadline);
    if (cfg.waitDone) await waitUntil(() => seen.done, '"done"', deadline);
    seen.after = await socket.timeout(5000).emitWithAck("whoami");
  } catch (err) {
    seen.error = err.message;
  }
  const report = JSON.stringify(seen); // before close(), whose own disconnect is not part of the story
  socket.close();
  proxy.close();
  process.stdout.write(report + "\n");
  process.exit(0);
}

main();
