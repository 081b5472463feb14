"""CSRF protection for the web shell's form posts.

Signed-in forms carry the session's ``csrf_token`` (the same secret the API checks in the
``X-CSRF-Token`` header). The login form has no session yet, so it carries a token signed with the
server key over a random nonce kept in a pre-session cookie: a forged cross-site post can neither
read that cookie nor mint a signature for it (login CSRF would sign the victim in as the attacker).
"""

from __future__ import annotations

import hmac
import re
import secrets

from itsdangerous import BadSignature, URLSafeTimedSerializer

LOGIN_COOKIE = "zvonar_login"
LOGIN_TOKEN_MAX_AGE = 2 * 3600
_SALT = "zvonar.web.login-csrf"
_NONCE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


def tokens_match(sent: str | None, expected: str) -> bool:
    """Constant-time comparison of a submitted token with the expected one."""
    return bool(sent) and hmac.compare_digest((sent or "").encode(), expected.encode())


class LoginCsrf:
    """Issues and checks the login form's token, bound to the pre-session nonce cookie."""

    def __init__(self, secret_key: str, *, max_age: int = LOGIN_TOKEN_MAX_AGE) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt=_SALT)
        self._max_age = max_age

    @staticmethod
    def nonce(cookie: str | None) -> str:
        """The browser's nonce if it sent a well-formed one, else a new one."""
        if cookie and _NONCE.match(cookie):
            return cookie
        return secrets.token_urlsafe(32)

    def token(self, nonce: str) -> str:
        return self._serializer.dumps(nonce)

    def check(self, token: str | None, cookie: str | None) -> bool:
        """True when ``token`` was issued by us, is fresh, and names the nonce in ``cookie``."""
        if not token or not cookie:
            return False
        try:
            value = self._serializer.loads(token, max_age=self._max_age)
        except BadSignature:  # also SignatureExpired
            return False
        return isinstance(value, str) and tokens_match(value, cookie)
