"use strict";
// The Node socket.io 4.8 peer of the Python client suite: the same app as tests/client/app.py.
// Usage: node tests/client/node_server.js PORT

const { Server } = require("socket.io");

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node node_server.js PORT");
  process.exit(2);
}

// PARSER=msgpack: socket.io-msgpack-parser, the MessagePack format.
const parser = process.env.PARSER === "msgpack" ? require("socket.io-msgpack-parser") : undefined;
const io = new Server(port, { cors: { origin: "*" }, ...(parser ? { parser } : {}) });

io.use((socket, next) => {
  const auth = socket.handshake.auth || {};
  if (Object.prototype.hasOwnProperty.call(auth, "refuse")) {
    const err = new Error("refused");
    err.data = { reason: auth.refuse };
    return next(err);
  }
  next();
});

io.on("connection", (socket) => {
  socket.on("echo", (...args) => {
    const cb = typeof args[args.length - 1] === "function" ? args.pop() : null;
    socket.emit("echo", ...args);
    if (cb) cb(...args);
  });
  socket.on("whoami", (cb) =>
    cb({
      sid: socket.id,
      auth: socket.handshake.auth,
      x: socket.handshake.query.x === undefined ? null : socket.handshake.query.x,
      header: socket.handshake.headers["x-test"] === undefined ? null : socket.handshake.headers["x-test"],
    }),
  );
  socket.on("server_call", (payload) => {
    socket.timeout(10000).emit("question", payload, (err, answer) => {
      socket.emit("answer", err ? null : answer);
    });
  });
  // Answers late: the client's call() times out first.
  socket.on("slow", (seconds, cb) => setTimeout(() => cb && cb("late"), seconds * 1000));
  socket.on("disconnect_me", () => socket.disconnect(true));
});

const admin = io.of("/admin");
admin.use((socket, next) => {
  const auth = socket.handshake.auth || {};
  if (auth.token !== "secret") return next(new Error("not authorized"));
  next();
});
admin.on("connection", (socket) => {
  socket.on("echo", (...args) => {
    const cb = typeof args[args.length - 1] === "function" ? args.pop() : null;
    if (cb) cb("admin", ...args);
  });
});
