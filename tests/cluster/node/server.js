"use strict";
// One Node node of a test cluster: the app of tests/apps/cluster_app.py on
// Node's official socket.io 4.8 server with @socket.io/redis-adapter 8, so that
// tests/cluster/test_node_cluster.py can mix it with Roomcast nodes.
// Usage: node tests/cluster/node/server.js PORT
// Environment: CLUSTER_KEY (the channel key), REDIS_URL, NODE_NAME.
// Every handler acknowledges, as in cluster_app.py: the ack says the request
// was carried out here (what was published may still be on its way).

const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node server.js PORT");
  process.exit(2);
}
const NAME = process.env.NODE_NAME || "node";
const KEY = process.env.CLUSTER_KEY || "socket.io";
const URL = process.env.REDIS_URL || "redis://127.0.0.1:6379/0";

// Splits the ack callback off the end of a handler's arguments (a missing one
// becomes a no-op, so a handler can always "acknowledge").
function splitAck(args) {
  if (args.length && typeof args[args.length - 1] === "function") {
    return [args.slice(0, -1), args[args.length - 1]];
  }
  return [args, () => {}];
}

// socket.on(event, handler) where handler(...args) returns (or resolves to)
// the acknowledgement; a failure is logged and acknowledged as {error}.
function handle(socket, event, handler) {
  socket.on(event, async (...raw) => {
    const [args, cb] = splitAck(raw);
    try {
      cb(await handler(...args));
    } catch (err) {
      console.error(`${event} failed:`, err);
      cb({ error: String(err && err.message) });
    }
  });
}

async function main() {
  const pubClient = createClient({ url: URL });
  const subClient = pubClient.duplicate();
  for (const client of [pubClient, subClient]) client.on("error", (err) => console.error("redis:", err));
  await Promise.all([pubClient.connect(), subClient.connect()]);

  const io = new Server({ cors: { origin: "*" }, adapter: createAdapter(pubClient, subClient, { key: KEY }) });

  // (A handler written `(x, "joined")` does x, then acknowledges "joined".)
  io.on("connection", (socket) => {
    handle(socket, "join", (room) => (socket.join(room), "joined"));
    handle(socket, "leave", (room) => (socket.leave(room), "left"));
    handle(socket, "shout", (payload) => (io.emit("news", payload), "sent"));
    handle(socket, "shout_others", (payload) => (socket.broadcast.emit("news", payload), "sent"));
    handle(socket, "to_room", (room, payload) => (io.to(room).emit("news", payload), "sent"));
    handle(socket, "to_room_except", (room, excluded, payload) => {
      io.to(room).except(excluded).emit("news", payload);
      return "sent";
    });
    handle(socket, "whoami", () => [socket.id, NAME]);
    handle(socket, "put", (target, room) => (io.in(target).socketsJoin(room), "put"));
    handle(socket, "kick", (target) => (io.in(target).disconnectSockets(), "kicked"));
    handle(socket, "fetch", async (room) => {
      const sockets = await (room == null ? io : io.in(room)).fetchSockets();
      return sockets
        .map((s) => ({ sid: s.id, rooms: [...s.rooms].sort(), data: s.data }))
        .sort((a, b) => (a.sid < b.sid ? -1 : a.sid > b.sid ? 1 : 0));
    });
    handle(socket, "remember", (data) => ((socket.data = { remembered: data }), "remembered"));
    handle(socket, "all_rooms", async () => [...(await io.of("/").adapter.allRooms())].sort());
    handle(socket, "count", () => io.of("/").adapter.serverCount());
    // A client of any node answers; the first answer is the ack (as Roomcast's sio.call).
    handle(socket, "ask", async (target, payload) => {
      const answers = await io.timeout(5000).to(target).emitWithAck("question", payload);
      return answers[0];
    });
    // Each member's answer is sent to the asker as "answer" ([answer], as Roomcast's callback args).
    handle(socket, "ask_room", (room, payload) => {
      io.timeout(5000).to(room).emit("question", payload, (err, answers) => {
        for (const answer of answers || []) socket.emit("answer", [answer]);
      });
      return "asked";
    });
    // Every member's answer, gathered (as Roomcast's sio.emit_with_ack).
    handle(socket, "ask_all", (room, payload) => io.timeout(5000).to(room).emitWithAck("question", payload));
    handle(socket, "servers_ping", async () => (await io.serverSideEmitWithAck("ping", NAME)).sort());
  });

  // A server-side emit from another node (serverSideEmitWithAck: answered).
  io.on("ping", (origin, cb) => cb && cb(`pong from ${NAME} to ${origin}`));

  io.of("/chat").on("connection", (socket) => {
    handle(socket, "join", (room) => (socket.join(room), "joined"));
    handle(socket, "shout", (payload) => (io.of("/chat").emit("news", payload), "sent"));
  });

  io.listen(port);

  function shutdown() {
    // io.close() closes the adapters (unsubscribing) and the HTTP server.
    io.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 500).unref();
  }
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
