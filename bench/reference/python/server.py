"""Reference python-socketio server for Vigil's benchmark (scripts/bench): the same tiny
contract every compared server implements.

- connect with a JWT (HS256) in ``auth.token``; a bad or expired one is refused
- ``subscribe {room}`` joins the room and answers ``subscribed {room}``
- ``POST /publish`` with ``{room, event, data}`` (or an array of them) emits ``event``
  with ``data`` to ``room``; answers 202 ``{"accepted": n}``

Run: ``JWT_SECRET=… uvicorn server:app --host 127.0.0.1 --port N``.
"""
import base64
import hashlib
import hmac
import json
import os
import time

import socketio

SECRET = os.environ.get("JWT_SECRET", "").encode()

sio = socketio.AsyncServer(async_mode="asgi", transports=["websocket", "polling"])


def _b64decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify(token):
    """The claims of a valid, unexpired HS256 token, else None."""
    if not isinstance(token, str) or token.count(".") != 2:
        return None
    header, payload, sig = token.split(".")
    expected = hmac.new(SECRET, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _b64decode(sig)):
            return None
        claims = json.loads(_b64decode(payload))
    except ValueError:
        return None
    if isinstance(claims.get("exp"), (int, float)) and claims["exp"] < time.time():
        return None
    return claims


@sio.event
async def connect(sid, environ, auth):
    claims = verify((auth or {}).get("token") if isinstance(auth, dict) else None)
    if claims is None:
        raise socketio.exceptions.ConnectionRefusedError("401 unauthorized")
    await sio.save_session(sid, {"user": claims.get("sub")})


@sio.event
async def subscribe(sid, payload):
    room = payload if isinstance(payload, str) else (payload or {}).get("room")
    if not isinstance(room, str):
        return
    await sio.enter_room(sid, room)
    await sio.emit("subscribed", {"room": room}, to=sid)


async def publish(scope, receive, send):
    """`POST /publish`; anything else is 404."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/publish":
        await _answer(send, 404, b"")
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    try:
        items = json.loads(body)
    except ValueError:
        await _answer(send, 400, b"")
        return
    items = items if isinstance(items, list) else [items]
    for item in items:
        await sio.emit(item["event"], item["data"], room=item["room"])
    await _answer(send, 202, json.dumps({"accepted": len(items)}).encode())


async def _answer(send, status, body):
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


app = socketio.ASGIApp(sio, other_asgi_app=publish)
