"use strict";
// The recovery test app on Node's official socket.io 4.8 server, with connectionStateRecovery on:
// the reference behaviour tests/recovery/app.py reproduces.
// Usage: node tests/recovery/node_server.js PORT
// Environment: RECOVERY_WINDOW, PING_INTERVAL, PING_TIMEOUT (seconds, like the Python app).

const { Server } = require("socket.io");

const port = Number(process.argv[2]);
const seconds = (name, fallback) => Number(process.env[name] || fallback) * 1000;

const io = new Server(port, {
  cors: { origin: "*" },
  pingInterval: seconds("PING_INTERVAL", 25),
  pingTimeout: seconds("PING_TIMEOUT", 20),
  connectionStateRecovery: { maxDisconnectionDuration: seconds("RECOVERY_WINDOW", 120), skipMiddlewares: true },
});

io.on("connection", (socket) => {
  console.log(`connect ${socket.id} recovered=${socket.recovered}`);
  socket.on("disconnect", (reason) => console.log(`disconnect ${socket.id} ${reason}`));
  socket.on("whoami", (cb) => {
    cb({ sid: socket.id, recovered: socket.recovered, rooms: [...socket.rooms].sort(), data: socket.data });
  });
  socket.on("join", (room, name, cb) => {
    socket.join(room);
    socket.data.name = name;
    cb("joined");
  });
  socket.on("stream", (room, count, intervalMs, cb) => {
    let n = 0;
    const timer = setInterval(() => {
      n += 1;
      io.to(room).emit("n", n);
      if (n === count) {
        clearInterval(timer);
        io.to(room).emit("done", count);
      }
    }, intervalMs);
    cb("started");
  });
});

function shutdown() {
  io.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 500).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
