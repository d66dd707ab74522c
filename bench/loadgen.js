'use strict';
/*
 * Roomcast's benchmark load generator: many Socket.IO clients in one Node process.
 *
 * It speaks the Engine.IO v4 / Socket.IO v5 wire protocol directly, over its own minimal WebSocket
 * and HTTP/1.1 clients on net.Socket (or over the `ws` package, to cross-check), instead of using
 * socket.io-client, so that each message costs a few buffer operations here and the server, not the
 * load generator, is the bottleneck. It measures its own CPU use over the measured window
 * (process.cpuUsage) and warns above 85%.
 *
 * Usage: node bench/loadgen.js '<json config>'  (bench/scenarios.py builds the config).
 *
 * It talks to the orchestrator (python -m bench) in JSON lines:
 *   stdout  {"mark": NAME}     a point in time (the orchestrator samples the server's CPU there)
 *           {"sync": NAME}     the same, then wait for one line on stdin before going on
 *           {"result": {...}}  the figures, last line on success
 *           {"error": "..."}   a failure, last line (exit status 1)
 *   stderr  human-readable progress and warnings
 */

const net = require('net');
const { performance } = require('perf_hooks');
const readline = require('readline');
const WebSocket = require('ws');

const cfg = Object.assign(
  {
    host: '127.0.0.1',
    path: '/socket.io/',
    clients: 50,
    wsClient: 'raw',
    duration: 5,
    warmup: 1,
    concurrency: 50,
    deflate: false,
    timeout: 120,
    settle: 1,
    warmClients: 50,
    roundTimeout: 10,
    window: 2,
  },
  JSON.parse(process.argv[2] || '{}'),
);

const PAYLOAD = JSON.stringify({ n: 1, text: 'hello, world' });
const CPU_WARN = 85;

// -- plumbing with the orchestrator ------------------------------------------------------------

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function log(msg) {
  process.stderr.write(`loadgen: ${msg}\n`);
}

const stdinLines = [];
const stdinWaiters = [];
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const waiter = stdinWaiters.shift();
  if (waiter) waiter(line);
  else stdinLines.push(line);
});
// The orchestrator went away: nobody is left to read the figures.
rl.on('close', () => {
  for (const waiter of stdinWaiters.splice(0)) waiter(null);
});

function sync(name) {
  out({ sync: name });
  return new Promise((resolve, reject) => {
    const got = (line) => (line === null ? reject(new Error('orchestrator closed stdin')) : resolve(line));
    if (stdinLines.length) got(stdinLines.shift());
    else stdinWaiters.push(got);
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves when check() is true (polled every `every` ms), rejects after `ms`. */
function waitFor(check, ms, what, every = 5) {
  return new Promise((resolve, reject) => {
    const deadline = performance.now() + ms;
    const tick = () => {
      if (check()) resolve();
      else if (performance.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, every);
    };
    tick();
  });
}

/** Measures wall time and this process's CPU between start() and stop(). */
class Window {
  start() {
    this.t0 = performance.now();
    this.cpu0 = process.cpuUsage();
    out({ mark: 'start' });
  }

  stop() {
    this.seconds = (performance.now() - this.t0) / 1000;
    const cpu = process.cpuUsage(this.cpu0);
    out({ mark: 'end' });
    this.cpuPercent = ((cpu.user + cpu.system) / 1e6 / this.seconds) * 100;
    this.systemPercent = (cpu.system / 1e6 / this.seconds) * 100;
    if (this.cpuPercent > CPU_WARN) {
      log(`WARNING: load generator CPU at ${this.cpuPercent.toFixed(0)}% (> ${CPU_WARN}%): figures may be its limit`);
    }
  }

  fields() {
    return {
      seconds: round(this.seconds, 3),
      loadgen_cpu: round(this.cpuPercent, 1),
      loadgen_cpu_system: round(this.systemPercent, 1),
      loadgen_saturated: this.cpuPercent > CPU_WARN,
    };
  }
}

function round(x, digits) {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function percentiles(values) {
  if (!values.length) return { p50: null, p90: null, p99: null, max: null };
  const sorted = Float64Array.from(values).sort();
  const at = (q) => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))], 3);
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: round(sorted[sorted.length - 1], 3) };
}

// Counted for every scenario: any of these makes the figures suspect, so they are reported.
const trouble = { errors: 0, unexpected_closes: 0, first_error: null };

function noteError(err) {
  trouble.errors += 1;
  if (!trouble.first_error) trouble.first_error = String(err && err.message ? err.message : err);
}

// -- WebSocket clients -------------------------------------------------------------------------
//
// Two interchangeable clients produce the same `client` object: { send(frame, text), terminate(),
// onMessage(payload Buffer), closing, handshakeMs, extensions }.
//   raw (default): RFC 6455's client side written out here over net.Socket: a fixed upgrade
//       request, frames parsed in place. ws's handshake (an http.ClientRequest, a random key, a
//       SHA-1 check, two streams) cost about 0.9 ms of CPU per connection, which capped the idle
//       scenario near 1,000 handshakes/s; this one costs a fraction of that.
//   ws: the `ws` package, for cross-checking the raw client, and for --deflate
//       (permessage-deflate, which the raw client does not implement).

const WS_PATH = `${cfg.path}?EIO=4&transport=websocket`;
const WS_CLIENT = cfg.deflate ? 'ws' : cfg.wsClient || 'raw';

/**
 * A whole client-to-server text frame (FIN, opcode 1, mask bit with the all-zero key, then the
 * payload as is), ready for one socket write. Client frames must be masked (RFC 6455 5.3), but an
 * all-zero key is a valid key that makes masking a no-op.
 */
function textFrame(text) {
  const length = Buffer.byteLength(text);
  const head = length < 126 ? 6 : 8;
  if (length >= 65536) throw new Error('textFrame: message too long');
  const frame = Buffer.allocUnsafe(head + length);
  frame[0] = 0x81;
  if (length < 126) {
    frame[1] = 0x80 | length;
  } else {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  }
  frame.fill(0, head - 4, head);
  frame.write(text, head);
  return frame;
}

const CONNECT_FRAME = textFrame('40');
const PONG_FRAME = textFrame('3');

function isPing(data) {
  return data.length === 1 && data[0] === 0x32;
}

/**
 * The Socket.IO opening over an open WebSocket. Engine.IO: the server speaks first with the open
 * packet `0{...}`. Socket.IO: the client then connects to "/" with `40`, and the server answers
 * `40{"sid":...}` (or `44{...}` to refuse). Server pings (`2`) are answered by the transports.
 */
function socketIoOpening(client, started, done, fail) {
  let stage = 0;
  client.onMessage = (data) => {
    const text = data.toString();
    if (stage === 0 && text[0] === '0') {
      stage = 1;
      client.send(CONNECT_FRAME, '40');
    } else if (stage === 1 && text.startsWith('40')) {
      stage = 2;
      client.handshakeMs = performance.now() - started;
      client.onMessage = () => {};
      done();
    } else if (stage === 1 && text.startsWith('44')) {
      fail(new Error(`connection refused: ${text}`));
    }
  };
}

/** Opens one Socket.IO connection to the main namespace over WebSocket. */
function wsConnect(timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let settled = false;
    let client;
    const timer = setTimeout(() => fail(new Error('handshake timed out')), timeoutMs);
    function fail(err) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.terminate();
      reject(err);
    }
    function done() {
      settled = true;
      clearTimeout(timer);
      resolve(client);
    }
    client = WS_CLIENT === 'ws' ? wsWithWs(fail) : wsRaw(fail);
    client.connected = () => settled;
    socketIoOpening(client, started, done, fail);
  });
}

/** The transport-level events every client reports the same way. */
function lost(client, fail, err) {
  if (!client.connected()) fail(err || new Error('closed during the handshake'));
  else if (!client.closing) {
    client.closing = true;
    if (err) noteError(err);
    else trouble.unexpected_closes += 1;
  }
}

const UPGRADE_REQUEST =
  `GET ${WS_PATH} HTTP/1.1\r\nHost: ${cfg.host}:${cfg.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  // RFC 6455's sample nonce: servers check the key's form, not its randomness.
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

// Every raw socket reads into this one buffer (net's `onread`), skipping the stream machinery
// behind 'data' events, which was most of the cost of a broadcast delivery. Callbacks run one at
// a time and consume it synchronously; whatever must outlive a callback is copied out first.
const READ_BUFFER = Buffer.allocUnsafeSlow(256 * 1024);

function ownCopy(buf) {
  return buf.buffer === READ_BUFFER.buffer ? Buffer.from(buf) : buf;
}

function connectReading(onData) {
  return net.connect({
    host: cfg.host,
    port: cfg.port,
    noDelay: true,
    onread: { buffer: READ_BUFFER, callback: (nread, buffer) => onData(buffer.subarray(0, nread)) },
  });
}

function wsRaw(fail) {
  const socket = connectReading(onData);
  const client = {
    closing: false,
    handshakeMs: 0,
    extensions: '',
    onMessage: null,
    send: (frame) => socket.write(frame),
    terminate: () => {
      client.closing = true;
      socket.destroy();
    },
  };
  let upgraded = false;
  let buf = null;
  let fragments = null;
  socket.write(UPGRADE_REQUEST);
  socket.on('error', (err) => lost(client, fail, err));
  socket.on('close', () => lost(client, fail, null));
  function onData(chunk) {
    buf = buf === null ? chunk : Buffer.concat([buf, chunk]);
    if (!upgraded) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        buf = ownCopy(buf);
        return;
      }
      const status = buf.toString('latin1', 0, buf.indexOf('\r\n'));
      if (!status.startsWith('HTTP/1.1 101')) {
        fail(new Error(`upgrade refused: ${status}`));
        return;
      }
      upgraded = true;
      buf = buf.length > end + 4 ? buf.subarray(end + 4) : null;
      if (buf === null) return;
    }
    parseFrames();
  }
  function parseFrames() {
    const n = buf.length;
    let at = 0;
    while (n - at >= 2) {
      const b0 = buf[at];
      const b1 = buf[at + 1];
      let length = b1 & 0x7f;
      let start = at + 2;
      if (length === 126) {
        if (n - at < 4) break;
        length = buf.readUInt16BE(at + 2);
        start = at + 4;
      } else if (length === 127) {
        if (n - at < 10) break;
        length = buf.readUInt32BE(at + 2) * 2 ** 32 + buf.readUInt32BE(at + 6);
        start = at + 10;
      }
      const masked = (b1 & 0x80) !== 0; // servers must not mask (RFC 6455 5.1), but tolerate it
      if (masked) start += 4;
      if (n < start + length) break;
      let payload = buf.subarray(start, start + length);
      if (masked) {
        payload = Buffer.from(payload);
        for (let i = 0; i < payload.length; i += 1) payload[i] ^= buf[start - 4 + (i & 3)];
      }
      at = start + length;
      const opcode = b0 & 0x0f;
      if (opcode === 8) {
        lost(client, fail, null);
        socket.destroy();
        return;
      }
      if (opcode === 9) {
        socket.write(Buffer.concat([Buffer.from([0x8a, 0x80 | payload.length, 0, 0, 0, 0]), payload]));
        continue;
      }
      if (opcode === 10) continue;
      if ((b0 & 0x80) === 0) {
        (fragments = fragments || []).push(Buffer.from(payload));
        continue;
      }
      if (fragments) {
        fragments.push(payload);
        payload = Buffer.concat(fragments);
        fragments = null;
      }
      if (isPing(payload)) socket.write(PONG_FRAME);
      else client.onMessage(payload);
    }
    buf = at >= n ? null : ownCopy(buf.subarray(at));
  }
  return client;
}

function wsWithWs(fail) {
  const ws = new WebSocket(`ws://${cfg.host}:${cfg.port}${WS_PATH}`, {
    perMessageDeflate: cfg.deflate,
    skipUTF8Validation: true,
    generateMask: (mask) => mask.fill(0),
  });
  const client = {
    closing: false,
    handshakeMs: 0,
    extensions: '',
    onMessage: null,
    // ws keeps its net.Socket in _socket (ws 8). Writing our pre-framed bytes there skips ws.send's
    // writev and allocations; it is safe because nothing else is sent on these connections but
    // pongs, whose order relative to events does not matter. With permessage-deflate, ws.send may
    // hold frames back while compressing, so then it sends everything.
    send: (frame, text) => {
      if (ws._socket && !cfg.deflate) ws._socket.write(frame);
      else ws.send(text);
    },
    terminate: () => {
      client.closing = true;
      ws.terminate();
    },
  };
  ws.on('open', () => {
    client.extensions = ws.extensions;
  });
  ws.on('error', (err) => lost(client, fail, err));
  ws.on('close', () => lost(client, fail, null));
  ws.on('message', (data) => {
    if (isPing(data)) client.send(PONG_FRAME, '3');
    else client.onMessage(data);
  });
  return client;
}

/** Opens n connections, at most `concurrency` handshakes in flight; failures are counted. */
async function connectMany(n, connect) {
  const clients = [];
  let next = 0;
  let failed = 0;
  async function worker() {
    while (next < n) {
      next += 1;
      try {
        clients.push(await connect());
      } catch (err) {
        failed += 1;
        noteError(err);
      }
    }
  }
  const workers = [];
  for (let i = 0; i < Math.min(cfg.concurrency, n); i += 1) workers.push(worker());
  await Promise.all(workers);
  return { clients, failed };
}

async function connectAll(n, connect) {
  const { clients, failed } = await connectMany(n, connect);
  if (failed) {
    closeAll(clients);
    throw new Error(`${failed} of ${n} connections failed (first error: ${trouble.first_error})`);
  }
  return clients;
}

function closeAll(clients) {
  for (const client of clients) {
    if (client.terminate) client.terminate();
    else client.close();
  }
}

/** Checks one reply against what the server must have sent back; a mismatch is an error. */
function checkReply(text, expected, what) {
  let got;
  try {
    got = JSON.stringify(JSON.parse(text));
  } catch (err) {
    throw new Error(`${what}: not JSON: ${text.slice(0, 200)}`);
  }
  if (got !== JSON.stringify(expected)) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${text.slice(0, 200)}`);
  }
}

// -- scenarios ---------------------------------------------------------------------------------

/**
 * Echo round trip over WebSocket: every client keeps exactly one message in flight and sends the
 * next as soon as the reply arrives. With `ack`, the reply is the acknowledgement (`43<id>[...]`)
 * of `42<id>["echoack",...]`; without, it is an `echo` event the server emits back.
 */
async function echo(ack) {
  const clients = await connectAll(cfg.clients, wsConnect);
  const latencies = [];
  let recording = false;
  let stopping = false;
  let inFlight = 0;
  let count = 0;
  let checked = false;
  const plainText = `42["echo",${PAYLOAD}]`;
  const plain = textFrame(plainText); // the same bytes every time: framed once

  const send = (client) => {
    client.sentAt = performance.now();
    inFlight += 1;
    if (ack) {
      client.ackId += 1;
      const text = `42${client.ackId}["echoack",${PAYLOAD}]`;
      client.send(textFrame(text), text);
    } else {
      client.send(plain, plainText);
    }
  };

  for (const client of clients) {
    client.ackId = 0;
    client.onMessage = (data) => {
      // '4' then '3' (ack) or '2' (event): anything else is not a reply.
      if (data[0] !== 0x34 || data[1] !== (ack ? 0x33 : 0x32)) return;
      const now = performance.now();
      inFlight -= 1;
      if (!checked) {
        checked = true;
        try {
          const text = data.toString();
          if (ack) {
            const id = /^43(\d+)/.exec(text);
            if (!id || Number(id[1]) !== client.ackId) throw new Error(`ack: wrong id in ${text.slice(0, 80)}`);
            checkReply(text.slice(id[0].length), [JSON.parse(PAYLOAD)], 'ack');
          } else {
            checkReply(text.slice(2), ['echo', JSON.parse(PAYLOAD)], 'echo');
          }
        } catch (err) {
          noteError(err);
          log(err.message);
        }
      }
      if (recording) {
        count += 1;
        latencies.push(now - client.sentAt);
      }
      if (!stopping) send(client);
    };
  }

  for (const client of clients) send(client);
  await sleep(cfg.warmup * 1000);
  const window = new Window();
  recording = true;
  window.start();
  await sleep(cfg.duration * 1000);
  recording = false;
  window.stop();
  stopping = true;
  await waitFor(() => inFlight === 0, 10000, 'the last replies').catch(noteError);
  const extensions = clients[0].extensions;
  closeAll(clients);
  return {
    clients: clients.length,
    messages: count,
    rate: round(count / window.seconds, 1),
    latency_ms: percentiles(latencies),
    extensions,
    ...window.fields(),
  };
}

/**
 * Broadcast: `clients` connections; the first one emits `bcast` and the server sends it to all of
 * them (itself included). `window` broadcasts are kept in flight: a new one is emitted each time
 * the last client has received an earlier one. With one in flight the server would sit idle while
 * the load generator reads the tail of each broadcast; with two, it always has the next one.
 *
 * Rounds are counted per client in arrival order (a client's k-th `bcast` completes its part of
 * round k), so nothing is parsed: round k is done when every client has received k broadcasts. Its
 * time is from the emit of broadcast k until then.
 */
async function broadcast() {
  const clients = await connectAll(cfg.clients, wsConnect);
  const n = clients.length;
  const window_ = Math.max(1, cfg.window || 2);
  const lastMs = [];
  const firstMs = [];
  const sentAt = [0];
  const firstAt = [0];
  const reached = [0]; // reached[k]: how many clients have received k broadcasts
  let recording = false;
  let stopping = false;
  let emitted = 0;
  let completed = 0;
  let rounds = 0;
  let checked = false;
  let failure = null;
  let progressAt = performance.now();
  let finished = null;
  const allDone = new Promise((resolve) => {
    finished = resolve;
  });
  const sender = clients[0];

  const emit = () => {
    emitted += 1;
    const text = `42["bcast",{"r":${emitted},"text":"hello, world"}]`;
    sentAt[emitted] = performance.now();
    reached[emitted] = 0;
    sender.send(textFrame(text), text);
  };

  const roundDone = (k) => {
    const now = performance.now();
    completed = k;
    progressAt = now;
    if (recording) {
      rounds += 1;
      lastMs.push(now - sentAt[k]);
      firstMs.push(firstAt[k] - sentAt[k]);
    }
    if (!stopping) emit();
    else if (completed === emitted) finished();
  };

  for (const client of clients) {
    client.got = 0;
    client.onMessage = (data) => {
      // 42["bcast",...: byte 4 is the event name's first letter.
      if (data[0] !== 0x34 || data[1] !== 0x32 || data[4] !== 0x62) return;
      client.got += 1;
      const k = client.got;
      if (k > emitted) {
        failure = failure || new Error(`a client received broadcast ${k} of ${emitted} emitted`);
        return;
      }
      reached[k] += 1;
      if (reached[k] === 1) firstAt[k] = performance.now();
      if (!checked) {
        checked = true;
        try {
          checkReply(data.toString().slice(2), ['bcast', { r: 1, text: 'hello, world' }], 'bcast');
        } catch (err) {
          noteError(err);
          log(err.message);
        }
      }
      if (reached[k] === n) roundDone(k);
    };
  }

  // A broadcast that never reaches everyone must not hang the run.
  const watchdog = setInterval(() => {
    if (completed < emitted && performance.now() - progressAt > cfg.roundTimeout * 1000) {
      const k = completed + 1;
      failure = failure || new Error(`broadcast ${k}: ${reached[k]} of ${n} clients got it within ${cfg.roundTimeout} s`);
      finished();
    }
  }, 250);

  for (let i = 0; i < window_; i += 1) emit();
  await Promise.race([sleep(cfg.warmup * 1000), allDone]);
  const window = new Window();
  recording = true;
  window.start();
  await Promise.race([sleep(cfg.duration * 1000), allDone]);
  recording = false;
  window.stop();
  stopping = true;
  if (completed === emitted) finished();
  await allDone;
  clearInterval(watchdog);
  const extensions = clients[0].extensions;
  closeAll(clients);
  if (failure) throw failure;
  return {
    clients: n,
    window: window_,
    broadcasts: rounds,
    deliveries: rounds * n,
    rate: round((rounds * n) / window.seconds, 1),
    broadcasts_per_s: round(rounds / window.seconds, 2),
    last_client_ms: percentiles(lastMs),
    first_client_ms: percentiles(firstMs),
    extensions,
    ...window.fields(),
  };
}

/**
 * Idle connections: `warmClients` connections first (so the server's one-time costs are paid), a
 * sync point where the orchestrator reads the server's RSS, then `clients` more as fast as the
 * server takes them (`concurrency` handshakes in flight), then another sync point for the RSS.
 */
async function idle() {
  const warm = await connectAll(cfg.warmClients, wsConnect);
  await sleep(cfg.settle * 1000);
  await sync('baseline');
  const window = new Window();
  window.start();
  const { clients, failed } = await connectMany(cfg.clients, wsConnect);
  window.stop();
  await sleep(cfg.settle * 1000);
  await sync('loaded');
  const handshakes = clients.map((c) => c.handshakeMs);
  const extensions = clients.length ? clients[0].extensions : '';
  closeAll(warm);
  closeAll(clients);
  return {
    clients: clients.length,
    failed,
    rate: round(clients.length / window.seconds, 1),
    handshake_ms: percentiles(handshakes),
    extensions,
    ...window.fields(),
  };
}

// -- long-polling clients ----------------------------------------------------------------------

/**
 * A minimal HTTP/1.1 keep-alive connection: one request at a time, responses framed by
 * Content-Length or chunked encoding, reconnecting when the server closes. Node's http client
 * cost about 200 µs of CPU per request here, enough to make the load generator the bottleneck of
 * the long-polling scenario; this costs a fraction of that.
 */
class HttpConnection {
  constructor() {
    this.socket = null;
    this.buffer = null;
    this.pending = null; // { resolve, reject, deadline }
  }

  request(method, path, body, timeoutMs) {
    if (this.pending) return Promise.reject(new Error('HttpConnection: one request at a time'));
    if (!this.socket) this.open();
    let head = `${method} ${path} HTTP/1.1\r\nHost: ${cfg.host}:${cfg.port}\r\n`;
    if (body !== null) head += `Content-Type: text/plain;charset=UTF-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`;
    this.socket.write(body === null ? `${head}\r\n` : `${head}\r\n${body}`);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject, deadline: performance.now() + timeoutMs, method };
    });
  }

  open() {
    const socket = connectReading((chunk) => {
      this.buffer = this.buffer ? Buffer.concat([this.buffer, chunk]) : chunk;
      this.parse();
      if (this.buffer) this.buffer = ownCopy(this.buffer);
    });
    this.socket = socket;
    this.buffer = null;
    const gone = (err) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.fail(err || new Error('connection closed by the server'));
    };
    socket.on('error', gone);
    socket.on('close', () => gone(null));
  }

  /** Resolves the pending request once its whole response is in the buffer. */
  parse() {
    const buf = this.buffer;
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0 || !this.pending) return;
    const head = buf.toString('latin1', 0, end);
    const status = Number(head.slice(9, 12));
    const lower = head.toLowerCase();
    let bodyEnd;
    let body;
    const length = /\r\ncontent-length:\s*(\d+)/.exec(lower);
    if (length) {
      bodyEnd = end + 4 + Number(length[1]);
      if (buf.length < bodyEnd) return;
      body = buf.toString('utf8', end + 4, bodyEnd);
    } else if (lower.includes('\r\ntransfer-encoding: chunked')) {
      const parts = [];
      let at = end + 4;
      for (;;) {
        const lineEnd = buf.indexOf('\r\n', at);
        if (lineEnd < 0) return;
        const size = parseInt(buf.toString('latin1', at, lineEnd), 16);
        if (buf.length < lineEnd + 2 + size + 2) return;
        if (size === 0) {
          bodyEnd = lineEnd + 4;
          break;
        }
        parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        at = lineEnd + 2 + size + 2;
      }
      body = Buffer.concat(parts).toString('utf8');
    } else {
      bodyEnd = end + 4;
      body = '';
    }
    this.buffer = buf.length > bodyEnd ? buf.subarray(bodyEnd) : null;
    const { resolve } = this.pending;
    this.pending = null;
    if (lower.includes('\r\nconnection: close')) this.close();
    resolve({ status, body });
  }

  fail(err) {
    const pending = this.pending;
    this.pending = null;
    if (pending) pending.reject(err);
  }

  close() {
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.destroy();
  }
}

// One watchdog for every HTTP request rather than a timer each.
const httpConnections = new Set();
setInterval(() => {
  const now = performance.now();
  for (const conn of httpConnections) {
    if (conn.pending && now > conn.pending.deadline) {
      const method = conn.pending.method;
      conn.close();
      conn.fail(new Error(`${method} timed out`));
    }
  }
}, 500).unref();

/**
 * One Socket.IO connection over HTTP long-polling: always one GET pending (the server answers it
 * with whatever it has queued, packets joined by \x1e, or a ping within pingInterval), and at most
 * one POST at a time (Engine.IO servers close a session on overlapping POSTs), with the packets
 * queued meanwhile sent together in the next one.
 */
async function pollConnect() {
  const started = performance.now();
  // Two connections, as a browser would use: one for the pending GET, one for POSTs.
  const getConn = new HttpConnection();
  const postConn = new HttpConnection();
  httpConnections.add(getConn);
  httpConnections.add(postConn);
  const drop = () => {
    getConn.close();
    postConn.close();
    httpConnections.delete(getConn);
    httpConnections.delete(postConn);
  };
  const base = `${cfg.path}?EIO=4&transport=polling`;
  let open;
  try {
    open = await getConn.request('GET', base, null, 15000);
  } catch (err) {
    drop();
    throw err;
  }
  if (open.status !== 200 || open.body[0] !== '0') {
    drop();
    throw new Error(`polling handshake: ${open.status} ${open.body.slice(0, 120)}`);
  }
  const sid = JSON.parse(open.body.split('\x1e')[0].slice(1)).sid;
  const client = {
    url: `${base}&sid=${encodeURIComponent(sid)}`,
    queue: [],
    posting: false,
    closing: false,
    connected: false,
    onMessage: () => {},
    handshakeMs: 0,
    extensions: '',
  };
  client.send = (packet) => {
    client.queue.push(packet);
    if (!client.posting) flush();
  };
  client.close = () => {
    client.closing = true;
    // A close packet ends the session (and the pending GET) on the server; then drop the sockets.
    const bye = new HttpConnection();
    bye.request('POST', client.url, '1', 5000)
      .catch(() => {})
      .finally(() => {
        bye.close();
        drop();
      });
  };
  const flush = () => {
    client.posting = true;
    const body = client.queue.join('\x1e');
    client.queue = [];
    postConn
      .request('POST', client.url, body, 15000)
      .then((res) => {
        if (res.status !== 200 && !client.closing) noteError(new Error(`POST ${res.status} ${res.body.slice(0, 120)}`));
      })
      .catch((err) => {
        if (!client.closing) noteError(err);
      })
      .finally(() => {
        client.posting = false;
        if (client.queue.length && !client.closing) flush();
      });
  };
  const poll = async () => {
    while (!client.closing) {
      let res;
      try {
        res = await getConn.request('GET', client.url, null, 60000);
      } catch (err) {
        if (!client.closing) noteError(err);
        return;
      }
      if (res.status !== 200) {
        if (!client.closing) {
          trouble.unexpected_closes += 1;
          noteError(new Error(`GET ${res.status} ${res.body.slice(0, 120)}`));
        }
        return;
      }
      for (const packet of res.body.split('\x1e')) {
        if (packet === '2') client.send('3');
        else if (packet.startsWith('40')) {
          client.connected = true;
          client.handshakeMs = performance.now() - started;
        } else if (packet.startsWith('4')) client.onMessage(packet);
        else if (packet === '1') {
          if (!client.closing) trouble.unexpected_closes += 1;
          return;
        }
      }
    }
  };
  client.send('40');
  poll();
  try {
    await waitFor(() => client.connected, 15000, 'the polling CONNECT reply');
  } catch (err) {
    client.close();
    throw err;
  }
  return client;
}

/** Echo round trip over long-polling: one message in flight per client, as over WebSocket. */
async function pollingEcho() {
  const clients = await connectAll(cfg.clients, pollConnect);
  const latencies = [];
  let recording = false;
  let stopping = false;
  let inFlight = 0;
  let count = 0;
  let checked = false;
  const plain = `42["echo",${PAYLOAD}]`;
  const send = (client) => {
    client.sentAt = performance.now();
    inFlight += 1;
    client.send(plain);
  };
  for (const client of clients) {
    client.onMessage = (packet) => {
      if (!packet.startsWith('42["echo"')) return;
      const now = performance.now();
      inFlight -= 1;
      if (!checked) {
        checked = true;
        try {
          checkReply(packet.slice(2), ['echo', JSON.parse(PAYLOAD)], 'polling echo');
        } catch (err) {
          noteError(err);
          log(err.message);
        }
      }
      if (recording) {
        count += 1;
        latencies.push(now - client.sentAt);
      }
      if (!stopping) send(client);
    };
  }
  for (const client of clients) send(client);
  await sleep(cfg.warmup * 1000);
  const window = new Window();
  recording = true;
  window.start();
  await sleep(cfg.duration * 1000);
  recording = false;
  window.stop();
  stopping = true;
  await waitFor(() => inFlight === 0, 10000, 'the last polling replies').catch(noteError);
  closeAll(clients);
  return {
    clients: clients.length,
    messages: count,
    rate: round(count / window.seconds, 1),
    latency_ms: percentiles(latencies),
    ...window.fields(),
  };
}

// -- main --------------------------------------------------------------------------------------

const SCENARIOS = {
  echo: () => echo(false),
  ack: () => echo(true),
  broadcast,
  idle,
  polling: pollingEcho,
};

async function main() {
  const scenario = SCENARIOS[cfg.scenario];
  if (!scenario) throw new Error(`unknown scenario ${cfg.scenario}`);
  const result = await scenario();
  // Let the closes reach the server before exiting, so it logs no reset connections.
  await sleep(100);
  out({ result: { ...result, ws_client: WS_CLIENT, ...trouble } });
}

const overall = setTimeout(() => {
  out({ error: `load generator timed out after ${cfg.timeout} s`, ...trouble });
  process.exit(1);
}, cfg.timeout * 1000);

main().then(
  () => {
    clearTimeout(overall);
    process.exit(0);
  },
  (err) => {
    out({ error: String(err && err.message ? err.message : err), ...trouble });
    process.exit(1);
  },
);
