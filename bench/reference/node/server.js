// Reference Socket.IO server for Vigil's benchmark (scripts/bench): the same tiny
// contract every compared server implements.
//   - connect with a JWT (HS256) in `auth.token`; a bad or expired one is refused
//   - `subscribe {room}` joins the room and answers `subscribed {room}`
//   - `POST /publish` with `{room, event, data}` (or an array of them) emits `event`
//     with `data` to `room`; answers 202 {"accepted": n}
// Environment: PORT (0 = any free port), JWT_SECRET. Prints "listening on <port>".
'use strict';
const http = require('node:http');
const crypto = require('node:crypto');
const { Server } = require('socket.io');

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

const httpServer = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/publish') {
    res.writeHead(404).end();
    return;
  }
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
    for (const { room, event, data } of items) io.to(room).emit(event, data);
    res.writeHead(202, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ accepted: items.length }));
  });
});

const io = new Server(httpServer, { transports: ['websocket', 'polling'] });
io.use((socket, next) => {
  const claims = verify(socket.handshake.auth && socket.handshake.auth.token);
  if (!claims) return next(new Error('401 unauthorized'));
  socket.data.user = claims.sub;
  next();
});
io.on('connection', (socket) => {
  socket.on('subscribe', (payload) => {
    const room = typeof payload === 'string' ? payload : payload && payload.room;
    if (typeof room !== 'string') return;
    socket.join(room);
    socket.emit('subscribed', { room });
  });
});

httpServer.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`listening on ${httpServer.address().port}`);
});
