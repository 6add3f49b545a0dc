"""The web page's guard: who may use it, and the headers every answer carries.

- Binding anything but loopback needs WEB_TOKEN (exposure_problem says so before anything listens);
  --no-auth opts out knowingly. When a token is set, every request needs it: the API as
  `Authorization: Bearer <token>`, the page asks for it once (POST /login) and then keeps an
  HttpOnly, SameSite=Strict cookie holding an HMAC of the token (never the token itself).
  Both are compared in constant time (hmac.compare_digest).
- Served on loopback without a token, only requests naming a loopback Host are answered, so a
  web site cannot reach the page through a DNS name rebound to 127.0.0.1.
- Every state-changing request (POST, PUT, DELETE...), token or not, is refused (403) when the
  browser says it comes from another site: an Origin that is not this Host, or a Sec-Fetch-Site
  other than same-origin/none. A request with neither header (curl, a script) is not a browser's
  cross-site request and goes on. So no web page can make a visitor's browser upload here.
- GET /healthz needs no token (a load balancer's probe; it tells only how many workers are up).
- Every answer: a Content-Security-Policy allowing only this response's nonce for the inline
  script and style (so an injected <script> does not run), nosniff, frame-ancestors 'none'
  (and X-Frame-Options), no referrer, and Cache-Control: no-store (results are private).
"""

import hashlib
import hmac
import ipaddress
import re
import secrets
from urllib.parse import urlsplit

from flask import g, jsonify, redirect, request

SESSION_COOKIE = "deepfake_detect_session"
LOOPBACK_NAMES = ("localhost",)
MAX_SHOWN_NAME = 120  # characters of an upload's file name kept for display
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")  # read only: every other method passes the cross-site check
BROWSER_SAME_ORIGIN = ("same-origin", "none")  # Sec-Fetch-Site values of the page itself or the user's own action
DEFAULT_PORTS = {"http": "80", "https": "443"}
OPEN_ENDPOINTS = ("login", "healthz")  # answered without the token


def is_loopback(host):
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_problem(host, token, no_auth):
    """The sentence refusing to serve `host` without a token, or None when it may start."""
    if is_loopback(host) or token or no_auth:
        return None
    return (f"--host {host} would let anyone who can reach this machine use the page: set a token first, "
            f"e.g. export WEB_TOKEN=$(python -c \"import secrets; print(secrets.token_urlsafe(32))\") "
            f"(or WEB_TOKEN in your config file), or pass --no-auth to serve without one knowingly")


def shown_name(file_name):
    """An upload's file name as shown and logged: control characters dropped, at most
    MAX_SHOWN_NAME characters. It is only ever displayed (escaped), never used in a path."""
    cleaned = re.sub(r"[\x00-\x1f\x7f]", "", file_name or "")
    return cleaned if len(cleaned) <= MAX_SHOWN_NAME else cleaned[:MAX_SHOWN_NAME - 3] + "..."


def host_name(host_header):
    """The host of a Host header without its port, lower case: '127.0.0.1:8000' -> '127.0.0.1',
    '[::1]:8000' and '[::1]' -> '[::1]' (an IPv6 address keeps its brackets, as URLs write it)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[:end + 1] if end > 0 else host
    if host.count(":") > 1:  # a bare IPv6 address (not valid in a Host header, but unambiguous)
        return f"[{host}]"
    return host.rsplit(":", 1)[0]


def origin_authority(origin):
    """'http://127.0.0.1:8000' -> '127.0.0.1:8000', without the scheme's default port
    ('https://example.com:443' -> 'example.com'); None for 'null' or anything unparsable."""
    try:
        parts = urlsplit(origin.strip().lower())
        authority, port = parts.netloc, parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not authority or "@" in authority:
        return None
    return authority.rsplit(":", 1)[0] if port is not None and str(port) == DEFAULT_PORTS[parts.scheme] else authority


def cross_site_problem(method, headers, host):
    """The sentence refusing a state-changing request a browser sent from another site, or None.
    `host` is the request's Host (werkzeug's request.host, default port already dropped)."""
    if method.upper() in SAFE_METHODS:
        return None
    refusal = "This page accepts uploads only from itself, not from another web site."
    fetch_site = headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.strip().lower() not in BROWSER_SAME_ORIGIN:
        return refusal
    origin = headers.get("Origin")
    if origin is not None and origin_authority(origin) != host.strip().lower():
        return refusal
    return None


def session_value(token):
    """The page's cookie value: an HMAC of the token, so the cookie never holds the token itself."""
    return hmac.new(token.encode("utf-8"), b"deepfake-detect page session", hashlib.sha256).hexdigest()


def is_authorized(token):
    """True when the current request carries `token` as a Bearer header or the page's cookie."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return hmac.compare_digest(header[7:].strip().encode("utf-8"), token.encode("utf-8"))
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return hmac.compare_digest(cookie.encode("utf-8"), session_value(token).encode("utf-8"))


def content_security_policy(nonce):
    return (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
            f"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def install_guard(app, token, page, allowed_hosts=None):
    """Add authentication (when `token`), the Host check (when `allowed_hosts`, a set of host
    names, compared without the port), the cross-site check of every state-changing request
    and the security headers to `app`. `page(status, **values)` renders the
    page, here its token form (login=True)."""

    @app.before_request
    def guard():
        g.csp_nonce = secrets.token_urlsafe(16)
        if allowed_hosts is not None and host_name(request.host) not in allowed_hosts:
            message = "This page answers only to its loopback address (127.0.0.1, localhost)."
            return (jsonify(error=message), 421) if request.path.startswith("/api/") else page(421, error=message)
        # before the token: a cross-site request is refused even from a visitor who has the cookie
        problem = cross_site_problem(request.method, request.headers, request.host)
        if problem:
            return (jsonify(error=problem), 403) if request.path.startswith("/api/") else page(403, error=problem)
        if not token or request.endpoint in OPEN_ENDPOINTS or is_authorized(token):
            return None
        if request.path.startswith("/api/"):
            answer = jsonify(error="This API needs the page's token: send the header Authorization: Bearer <WEB_TOKEN>.")
            return answer, 401, {"WWW-Authenticate": 'Bearer realm="deepfake-detect"'}
        return page(401, login=True)

    @app.post("/login")
    def login():
        given = request.form.get("token", "")
        if not token:
            return redirect("/", 303)
        if not hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
            return page(401, login=True, error="That is not this page's token.")
        answer = redirect("/", 303)
        answer.set_cookie(SESSION_COOKIE, session_value(token), httponly=True, samesite="Strict",
                          secure=request.is_secure, path="/")
        return answer

    @app.after_request
    def add_headers(response):
        nonce = g.get("csp_nonce") or secrets.token_urlsafe(16)
        response.headers["Content-Security-Policy"] = content_security_policy(nonce)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.context_processor
    def nonce():
        return {"csp_nonce": g.get("csp_nonce", "")}
