"""Bearer tokens of the reporting API, kept in ops.api_tokens as SHA-256 hashes only.

A token reads `bu_<token_id>_<secret>`: the id finds the row, the hash of the whole token is compared in
constant time. A token is 256 random bits, so a fast hash is enough (nothing to brute-force). An agency
token (client_id null) sees every client; a client token sees only its client. The token is shown once,
when it is created; nothing here logs it or puts it in an error.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "bu"
_TOKEN = re.compile(r"^bu_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
# Compared against when no row matches, so an unknown id costs the same as a wrong secret.
_DUMMY_HASH = hashlib.sha256(b"no such token").hexdigest()


@dataclass(frozen=True)
class Principal:
    token_id: str
    client_id: str | None  # None: the agency, every client

    @property
    def is_agency(self) -> bool:
        return self.client_id is None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """(token_id, token)."""
    token_id = secrets.token_hex(8)
    return token_id, f"{PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"


def create_token(connection, client_id: str | None, label: str | None = None) -> tuple[str, str]:
    """Store a new token's hash; returns (token_id, token). The caller shows the token once."""
    token_id, token = new_token()
    with connection.cursor() as cursor:
        cursor.execute("insert into ops.api_tokens (token_id, token_hash, client_id, label) values (%s, %s, %s, %s)",
                       (token_id, token_hash(token), client_id, label))
    connection.commit()
    return token_id, token


def revoke_token(connection, token_id: str) -> bool:
    """True if a live token was revoked."""
    with connection.cursor() as cursor:
        cursor.execute("update ops.api_tokens set revoked_at = now() where token_id = %s and revoked_at is null",
                       (token_id,))
        revoked = cursor.rowcount == 1
    connection.commit()
    return revoked


def list_tokens(connection) -> list[tuple]:
    """(token_id, client_id, label, created_at, revoked_at): never a hash."""
    with connection.cursor() as cursor:
        cursor.execute("select token_id, client_id, label, created_at, revoked_at from ops.api_tokens "
                       "order by created_at, token_id")
        return cursor.fetchall()


def verify(cursor, token: str | None) -> Principal | None:
    """The principal of a live token, else None. One query and one constant-time comparison whatever the
    token, well-formed or not."""
    match = _TOKEN.match(token or "")
    token_id = match.group(1) if match else ""
    cursor.execute("select token_hash, client_id, revoked_at is null from ops.api_tokens where token_id = %s",
                   (token_id,))
    row = cursor.fetchone()
    stored, client_id, live = row if row else (_DUMMY_HASH, None, False)
    matches = hmac.compare_digest(stored, token_hash(token or ""))
    return Principal(token_id, client_id) if matches and live and match else None
