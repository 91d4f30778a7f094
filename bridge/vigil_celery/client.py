"""Vigil's HTTP API as the bridge uses it: ingest, the command feed, breaker status and
token renewal. Standard library only (urllib), so the bridge adds no dependency."""

import base64
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

log = logging.getLogger("vigil_celery")

#: Seconds one ordinary request may take before it counts as failed.
REQUEST_TIMEOUT = 10.0
#: Share of a token's lifetime after which it is renewed (`POST /api/auth/refresh`),
#: early enough that a slow renewal never lets it expire.
RENEW_AT = 0.8


class VigilError(Exception):
    """Vigil could not be used: unreachable, or it refused the bridge."""


class AuthError(VigilError):
    """The token was refused (bad, expired or the wrong role)."""


def token_claims(token):
    """The claims of a JWT, read without verifying them (Vigil verifies); {} if unreadable."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return claims if isinstance(claims, dict) else {}
    except (IndexError, ValueError, AttributeError):
        return {}


def token_times(token):
    """(iat, exp) of a JWT; (None, None) when it has none."""
    claims = token_claims(token)
    return claims.get("iat"), claims.get("exp")


class VigilClient:
    """One Vigil server and the bridge's token, renewed before it expires."""

    def __init__(self, url, token, timeout=REQUEST_TIMEOUT):
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise VigilError(f"--url must be an http(s) URL such as http://127.0.0.1:3000, not {url!r}")
        if not token:
            raise AuthError("no token: pass --token or set VIGIL_TOKEN (`vigil token --role producer`)")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._token = token
        self._lock = threading.Lock()

    @property
    def token(self):
        with self._lock:
            return self._token

    def request(self, method, path, body=None, timeout=None):
        """(status, parsed JSON body). Raises OSError when Vigil cannot be reached."""
        data = None if body is None else json.dumps(body, default=str).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                return resp.status, _json(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, _json(e.read())

    def check(self):
        """Fails with a clear message when the URL or the token is wrong."""
        try:
            status, _ = self.request("GET", "/health")
        except OSError as e:
            raise VigilError(f"cannot reach Vigil at {self.url}: {e}") from e
        if status != 200:
            raise VigilError(f"{self.url} does not look like Vigil: GET /health answered {status}")
        status, body = self.request("GET", "/api/v1/events?topics=commands&timeout=0")
        if status == 401:
            raise AuthError(f"Vigil refused the token: {_message(body)}")
        if status == 403:
            raise AuthError(f"the token may not read commands ({_message(body)}); use a producer token")
        if status != 200:
            raise VigilError(f"Vigil answered {status} to the command feed: {_message(body)}")
        role = token_claims(self.token).get("role")
        if role not in ("producer", "admin"):
            raise AuthError(f"the token has role {role!r}, which may not report events; use a producer token")

    def renew_if_due(self, now=None):
        """Swaps the token for a fresh one once [RENEW_AT] of its lifetime has passed."""
        iat, exp = token_times(self.token)
        now = time.time() if now is None else now
        if not exp or not iat or exp <= iat or now < iat + (exp - iat) * RENEW_AT:
            return False
        return self.renew()

    def renew(self):
        status, body = self.request("POST", "/api/auth/refresh")
        if status != 200 or "access_token" not in body:
            log.error("token renewal refused (%s): %s", status, _message(body))
            return False
        with self._lock:
            self._token = body["access_token"]
        log.info("token renewed (expires in %ss)", body.get("expires_in"))
        return True

    def post_events(self, events):
        """POSTs a batch; on 401 renews the token once and tries again."""
        status, body = self.request("POST", "/api/v1/events", events)
        if status == 401 and self.renew():
            status, body = self.request("POST", "/api/v1/events", events)
        return status, body

    def commands(self, since, wait):
        """One long-poll of the `commands` topic after `since` (None: from now)."""
        query = {"topics": "commands", "timeout": int(wait)}
        if since is not None:
            query["since"] = since
        path = "/api/v1/events?" + urllib.parse.urlencode(query)
        status, body = self.request("GET", path, timeout=wait + self.timeout)
        if status == 401 and self.renew():
            status, body = self.request("GET", path, timeout=wait + self.timeout)
        return status, body

    def breaker_state(self, queue):
        """`open`, `half_open` or `closed`, and the reason."""
        path = "/api/v1/queue/circuit-breaker-status?" + urllib.parse.urlencode({"queue": queue})
        status, body = self.request("GET", path)
        if status != 200:
            raise VigilError(f"breaker status answered {status}: {_message(body)}")
        data = body.get("data", {})
        return data.get("state"), (data.get("metadata") or {}).get("reason")


def _json(raw):
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {"error": {"message": raw[:200].decode(errors="replace")}}


def _message(body):
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return err.get("message") or err.get("code") or str(err)
    return str(body)[:200]
