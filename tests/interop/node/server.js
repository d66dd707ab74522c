"use strict";
// The interop app on Node's official socket.io 4.8 server: the reference
// behaviour that tests/apps/interop_app.py reproduces with the Python API.
// Usage: node tests/interop/node/server.js PORT
// Handlers ack only when the client asked for an ack. "echo" always emits its
// args back too (and acks them when asked), because the Python API cannot tell
// a handler whether an ack was requested. The broadcast-style
// handlers ack "sent" after emitting, so a client can wait for the emit.

const { Server } = require("socket.io");

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node server.js PORT");
  process.exit(2);
}

const io = new Server(port, { cors: { origin: "*" } });

// Disconnect reasons seen so far, in order, as [sid, reason] pairs.
const reasons = [];

// Splits the optional ack callback off the end of a handler's arguments.
function splitAck(args) {
  if (args.length && typeof args[args.length - 1] === "function") {
    return [args.slice(0, -1), args[args.length - 1]];
  }
  return [args, null];
}

function ack(cb, ...values) {
  if (cb) cb(...values);
}

const main = io.of("/");

main.use((socket, next) => {
  const auth = socket.handshake.auth || {};
  if (Object.prototype.hasOwnProperty.call(auth, "refuse")) {
    const err = new Error("refused");
    err.data = { reason: auth.refuse };
    return next(err);
  }
  next();
});

main.on("connection", (socket) => {
  socket.on("echo", (...raw) => {
    const [args, cb] = splitAck(raw);
    socket.emit("echo", ...args);
    ack(cb, ...args);
  });
  socket.on("join", (room, cb) => {
    socket.join(room);
    ack(cb, "joined");
  });
  socket.on("leave", (room, cb) => {
    socket.leave(room);
    ack(cb, "left");
  });
  socket.on("to_room", (room, msg, cb) => {
    main.to(room).emit("room_message", msg);
    ack(cb, "sent");
  });
  socket.on("broadcast", (msg, cb) => {
    socket.broadcast.emit("broadcast", msg);
    ack(cb, "sent");
  });
  socket.on("broadcast_all", (msg, cb) => {
    main.emit("broadcast_all", msg);
    ack(cb, "sent");
  });
  socket.on("broadcast_except_room", (room, msg, cb) => {
    main.except(room).emit("broadcast_except_room", msg);
    ack(cb, "sent");
  });
  // Asks the sender a question (a server->client ack), then reports the
  // client's ack arguments back as an "answer" event.
  socket.on("server_call", (payload) => {
    socket.emit("question", payload, (...answer) => {
      socket.emit("answer", ...answer);
    });
  });
  socket.on("disconnect_me", () => {
    socket.disconnect();
  });
  socket.on("whoami", (cb) => {
    const x = socket.handshake.query.x;
    ack(cb, {
      sid: socket.id,
      auth: socket.handshake.auth || {},
      query: x === undefined ? null : x,
    });
  });
  socket.on("bin_echo", (data, cb) => {
    ack(cb, { size: data.length, data });
  });
  socket.on("reasons", (...raw) => {
    const [args, cb] = splitAck(raw);
    const sid = args.length ? args[0] : null;
    ack(cb, reasons.filter(([s]) => sid === null || s === sid).map(([, r]) => r));
  });
  socket.on("disconnect", (reason) => {
    reasons.push([socket.id, reason]);
  });
});

const admin = io.of("/admin");
admin.use((socket, next) => {
  const auth = socket.handshake.auth || {};
  const keys = Object.keys(auth);
  if (keys.length === 1 && auth.token === "secret") return next();
  next(new Error("not authorized"));
});
admin.on("connection", (socket) => {
  socket.on("echo", (...raw) => {
    const [args, cb] = splitAck(raw);
    socket.emit("echo", ...args);
    ack(cb, ...args);
  });
});

// Dynamic namespaces: any name matching the pattern is created on demand;
// anything else (e.g. "/nope") gets the server's default refusal.
io.of(/^\/dyn-\d+$/).on("connection", (socket) => {
  socket.on("echo", (...raw) => {
    const [args, cb] = splitAck(raw);
    socket.emit("echo", socket.nsp.name, ...args);
    ack(cb, socket.nsp.name, ...args);
  });
});

function shutdown() {
  io.close(() => process.exit(0));
  // io.close waits for open HTTP connections; do not let a lingering
  // long-poll keep the test harness waiting.
  setTimeout(() => process.exit(0), 500).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
