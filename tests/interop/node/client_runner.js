"use strict";
// A long-running driver for the official socket.io-client, controlled by
// tests/helpers/node_peer.py. It reads one JSON command per line on stdin and
// writes one JSON report per line on stdout; stderr is free-form logging.
//
// Binary values cross the pipe as {"$bin": "<base64>"} in both directions.
//
// Commands (all carry "req", echoed in the matching "result" report):
//   connect      {client, url, namespace, opts, share?}  opts go to the Manager
//                (transports, query, reconnection, ...) except opts.auth, which
//                goes to the namespace socket; opts.parser "msgpack" selects
//                socket.io-msgpack-parser. With share=<client id> the new
//                socket is multiplexed on that client's Manager (one
//                Engine.IO connection, several namespaces).
//   open         {client}                socket.connect() again after a disconnect
//   emit         {client, event, args, ack}  with ack=true an "ack" report follows
//   auto_reply   {client, event, args}   answer server->client acks for event
//   disconnect   {client}                socket.disconnect()
//   close_engine {client}                close the Engine.IO connection under the
//                                        socket (like a network cut, so the
//                                        Manager may reconnect)
//   state        {client}                result carries connected, id, transport
//   shutdown     {}                      close everything and exit
//
// Reports: ready, result {req, ok, error?, ...}, open {transport},
//   connect {sid, engine, transport}, upgrade {transport}, connect_error {message, data},
//   disconnect {reason}, event {event, args, with_ack}, replied {event, args},
//   ack {req, args}, reconnect_attempt {attempt}, reconnect {attempt}.

const readline = require("readline");
const { Manager } = require("socket.io-client");

const clients = new Map(); // client id -> { socket, manager, rules }
let nextClient = 1;

function encode(value) {
  if (Buffer.isBuffer(value)) return { $bin: value.toString("base64") };
  if (value instanceof ArrayBuffer) return { $bin: Buffer.from(value).toString("base64") };
  if (ArrayBuffer.isView(value)) {
    return { $bin: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") };
  }
  if (Array.isArray(value)) return value.map(encode);
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = encode(v);
    return out;
  }
  return value === undefined ? null : value;
}

function decode(value) {
  if (Array.isArray(value)) return value.map(decode);
  if (value && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === "$bin") return Buffer.from(value.$bin, "base64");
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = decode(v);
    return out;
  }
  return value;
}

function report(msg) {
  process.stdout.write(JSON.stringify(msg) + "\n");
}

function transportName(manager) {
  return manager.engine && manager.engine.transport ? manager.engine.transport.name : null;
}

function watchManager(manager, client) {
  // The Manager creates a new Engine.IO socket on every (re)connection; hook
  // each one as it opens so every upgrade is reported.
  manager.on("open", () => {
    report({ type: "open", client, transport: transportName(manager) });
    manager.engine.on("upgrade", (transport) => {
      report({ type: "upgrade", client, transport: transport.name });
    });
  });
  manager.on("reconnect_attempt", (attempt) => report({ type: "reconnect_attempt", client, attempt }));
  manager.on("reconnect", (attempt) => report({ type: "reconnect", client, attempt }));
}

function watchSocket(entry, client) {
  const { socket, manager } = entry;
  socket.on("connect", () => {
    // engine: the Engine.IO session id, equal for multiplexed namespaces.
    report({
      type: "connect",
      client,
      sid: socket.id,
      engine: manager.engine ? manager.engine.id : null,
      transport: transportName(manager),
    });
  });
  socket.on("connect_error", (err) => {
    report({
      type: "connect_error",
      client,
      message: err.message,
      data: err.data === undefined ? null : encode(err.data),
    });
  });
  socket.on("disconnect", (reason) => report({ type: "disconnect", client, reason }));
  socket.onAny((event, ...args) => {
    let cb = null;
    if (args.length && typeof args[args.length - 1] === "function") cb = args.pop();
    report({ type: "event", client, event, args: encode(args), with_ack: cb !== null });
    const rule = entry.rules.get(event);
    if (cb && rule) {
      cb(...decode(rule));
      report({ type: "replied", client, event, args: rule });
    }
  });
}

function getClient(id) {
  const entry = clients.get(id);
  if (!entry) throw new Error(`unknown client ${JSON.stringify(id)}`);
  return entry;
}

const handlers = {
  connect(cmd) {
    const client = cmd.client || `c${nextClient++}`;
    if (clients.has(client)) throw new Error(`client ${client} exists`);
    const opts = { ...(cmd.opts || {}) };
    const auth = opts.auth;
    delete opts.auth;
    if (opts.parser === "msgpack") opts.parser = require("socket.io-msgpack-parser");
    let manager;
    if (cmd.share) {
      manager = getClient(cmd.share).manager;
    } else {
      manager = new Manager(cmd.url, opts);
      watchManager(manager, client);
    }
    const socketOpts = auth === undefined ? {} : { auth: decode(auth) };
    const socket = manager.socket(cmd.namespace || "/", socketOpts);
    const entry = { socket, manager, rules: new Map(), owner: !cmd.share };
    clients.set(client, entry);
    watchSocket(entry, client);
    // No socket.connect() here: with the Manager's default autoConnect the
    // socket opens itself, and a second open would send a second CONNECT.
    return { client };
  },
  open(cmd) {
    getClient(cmd.client).socket.connect();
    return {};
  },
  emit(cmd) {
    const { socket } = getClient(cmd.client);
    const args = decode(cmd.args || []);
    if (cmd.ack) {
      socket.emit(cmd.event, ...args, (...ackArgs) => {
        report({ type: "ack", client: cmd.client, req: cmd.req, args: encode(ackArgs) });
      });
    } else {
      socket.emit(cmd.event, ...args);
    }
    return {};
  },
  auto_reply(cmd) {
    getClient(cmd.client).rules.set(cmd.event, cmd.args || []);
    return {};
  },
  disconnect(cmd) {
    getClient(cmd.client).socket.disconnect();
    return {};
  },
  close_engine(cmd) {
    const { manager } = getClient(cmd.client);
    if (!manager.engine) throw new Error("no engine to close");
    manager.engine.close();
    return {};
  },
  state(cmd) {
    const { socket, manager } = getClient(cmd.client);
    return { connected: socket.connected, id: socket.id || null, transport: transportName(manager) };
  },
  shutdown() {
    // Disconnecting a Manager's last socket closes the Manager too.
    for (const { socket } of clients.values()) socket.disconnect();
    setImmediate(() => process.exit(0));
    return {};
  },
};

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    report({ type: "result", req: null, ok: false, error: `bad JSON: ${err.message}` });
    return;
  }
  const handler = handlers[cmd.cmd];
  try {
    if (!handler) throw new Error(`unknown command ${JSON.stringify(cmd.cmd)}`);
    report({ type: "result", req: cmd.req, ok: true, ...handler(cmd) });
  } catch (err) {
    report({ type: "result", req: cmd.req, ok: false, error: err.message });
  }
});
// The Python side closing stdin means the test session is over.
rl.on("close", () => process.exit(0));

report({ type: "ready", versions: { "socket.io-client": require("socket.io-client/package.json").version } });
