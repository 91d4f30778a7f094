// Reference push server for Vigil's benchmark (scripts/bench): the same tiny contract
// every compared server implements, on each transport.
//   - Socket.IO: connect with a JWT (HS256) in `auth.token`; a bad or expired one is
//     refused; `subscribe {room}` joins the room and answers `subscribed {room}`
//   - SSE: `GET /events?access_token=<jwt>&topics=<room>[,<room>…]`, first
//     `event: connected`, then one SSE message per event
//   - native WebSocket (the `ws` package): `GET /ws?access_token=<jwt>&topics=…`, first
//     `{"type":"connected"}`, then one text message (the data) per event
//   - `POST /publish` with `{room, event, data}` (or an array of them) sends `event`
//     with `data` to `room` on every transport; answers 202 {"accepted": n}
//   - behind Pushpin (a request carrying `Grip-Sig`), `GET /events` is answered with a
//     GRIP stream hold on the topics' channels instead, and Pushpin keeps the
//     connection; events are then published to Pushpin, not here
// Environment: PORT (0 = any free port), JWT_SECRET. Prints "listening on <port>".
'use strict';
const http = require('node:http');
const crypto = require('node:crypto');
const { Server } = require('socket.io');
const { WebSocketServer } = require('ws');

const secret = process.env.JWT_SECRET || '';

function b64url(buf) {
  return buf.toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

/** The claims of a valid, unexpired HS256 token, else null. */
function verify(token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const expected = b64url(crypto.createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest());
  const a = Buffer.from(expected);
  const b = Buffer.from(parts[2]);
  if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) return null;
  try {
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
    if (typeof claims.exp === 'number' && claims.exp < Date.now() / 1000) return null;
    return claims;
  } catch {
    return null;
  }
}

/** Subscribers of the plain transports, by room: {sse: Set<res>, ws: Set<socket>}. */
const rooms = new Map();

function room(name) {
  if (!rooms.has(name)) rooms.set(name, { sse: new Set(), ws: new Set() });
  return rooms.get(name);
}

/** The token and rooms of an SSE or WebSocket request, or null if refused. */
function subscription(req) {
  const url = new URL(req.url, 'http://localhost');
  if (!verify(url.searchParams.get('access_token'))) return null;
  const topics = (url.searchParams.get('topics') || '').split(',').filter((t) => t);
  return { path: url.pathname, topics };
}

function publish(req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let items;
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString());
      items = Array.isArray(body) ? body : [body];
    } catch {
      res.writeHead(400).end();
      return;
    }
    for (const { room: name, event, data } of items) {
      io.to(name).emit(event, data);
      const members = rooms.get(name);
      if (!members) continue;
      const json = JSON.stringify(data);
      const sse = `event: ${event}\ndata: ${json}\n\n`;
      for (const r of members.sse) r.write(sse);
      const text = Buffer.from(json);
      for (const ws of members.ws) ws.send(text, { binary: false });
    }
    res.writeHead(202, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ accepted: items.length }));
  });
}

function events(req, res) {
  const sub = subscription(req);
  if (!sub) {
    res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"401 unauthorized"}');
    return;
  }
  const hello = 'event: connected\ndata: {}\n\n';
  if (req.headers['grip-sig']) {
    // Pushpin holds the stream and subscribes it to the channels.
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'grip-hold': 'stream',
      'grip-channel': sub.topics.join(', '),
    });
    res.end(hello);
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.write(hello);
  for (const t of sub.topics) room(t).sse.add(res);
  res.on('close', () => sub.topics.forEach((t) => room(t).sse.delete(res)));
}

const httpServer = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/publish') return publish(req, res);
  if (req.method === 'GET' && req.url.startsWith('/events?')) return events(req, res);
  res.writeHead(404).end();
});

const wss = new WebSocketServer({ noServer: true });
httpServer.on('upgrade', (req, socket, head) => {
  if (!req.url.startsWith('/ws?')) return; // Socket.IO's own listener takes its path
  const sub = subscription(req);
  if (!sub) {
    socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    for (const t of sub.topics) room(t).ws.add(ws);
    ws.on('close', () => sub.topics.forEach((t) => room(t).ws.delete(ws)));
    ws.send('{"type":"connected"}');
  });
});

// `destroyUpgrade: false`: upgrades to other paths (`/ws`) are not Socket.IO's to end.
const io = new Server(httpServer, { transports: ['websocket', 'polling'], destroyUpgrade: false });
io.use((socket, next) => {
  const claims = verify(socket.handshake.auth && socket.handshake.auth.token);
  if (!claims) return next(new Error('401 unauthorized'));
  socket.data.user = claims.sub;
  next();
});
io.on('connection', (socket) => {
  socket.on('subscribe', (payload) => {
    const name = typeof payload === 'string' ? payload : payload && payload.room;
    if (typeof name !== 'string') return;
    socket.join(name);
    socket.emit('subscribed', { room: name });
  });
});

httpServer.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`listening on ${httpServer.address().port}`);
});
