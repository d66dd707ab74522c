'use strict';
// Node's socket.io 4.8 server with the benchmark's app (default options): node node_server.js PORT
const { Server } = require('socket.io');

const port = Number(process.argv[2]);
const io = new Server(port);

io.on('connection', (socket) => {
  socket.on('echo', (data) => socket.emit('echo', data));
  socket.on('echoack', (data, ack) => ack(data));
  socket.on('bcast', (data) => io.emit('bcast', data));
});
