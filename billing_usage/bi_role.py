"""The read-only login BI tools use: SELECT on the marts and reporting schemas, nothing else.

The role gets USAGE on those schemas, SELECT on their tables and views, and default privileges so the
tables dbt recreates on every build stay readable. Every other schema (raw_*, ops, snapshots, staging,
intermediate, ...) is revoked, as is any membership in another role, and its sessions start read-only.
The password is sent as a SCRAM-SHA-256 verifier computed here, so the plain text never reaches the
server (nor its statement log) and is never printed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from psycopg2 import sql

from billing_usage.settings import SettingsError

BI_ROLE_ENV = "BILLING_USAGE_BI_ROLE"
BI_PASSWORD_ENV = "BILLING_USAGE_BI_PASSWORD"
DEFAULT_BI_ROLE = "billing_bi"
READABLE_SCHEMAS = ("marts", "reporting")
MIN_PASSWORD_LENGTH = 12
SCRAM_ITERATIONS = 4096
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SYSTEM_SCHEMAS = "left(nspname, 3) <> 'pg_' and nspname <> 'information_schema'"


@dataclass(frozen=True)
class BiRoleConfig:
    role: str
    password: str

    def __repr__(self) -> str:  # never the password
        return f"BiRoleConfig(role={self.role!r})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> BiRoleConfig:
        role = environ.get(BI_ROLE_ENV) or DEFAULT_BI_ROLE
        if not _ROLE_NAME.match(role):
            raise SettingsError(f"{BI_ROLE_ENV} must be a lower-case PostgreSQL identifier (letters, digits, _), "
                                f"got {role!r}")
        password = environ.get(BI_PASSWORD_ENV) or ""
        if len(password) < MIN_PASSWORD_LENGTH:
            raise SettingsError(f"{BI_PASSWORD_ENV} must hold the BI role's password, at least {MIN_PASSWORD_LENGTH} "
                                "characters (value not shown)")
        return cls(role=role, password=password)


@dataclass(frozen=True)
class BiRoleReport:
    role: str
    created: bool
    database: str
    readable_tables: dict[str, int]  # schema -> tables and views the role can select from now
    revoked_schemas: list[str]
    revoked_memberships: list[str]

    def lines(self) -> list[str]:
        verb = "created" if self.created else "updated"
        lines = [f"Role {self.role} {verb} on database {self.database}: login, read-only sessions, password set "
                 f"from {BI_PASSWORD_ENV} (not shown)."]
        lines += [f"  SELECT on {schema}.*: {count} tables and views now, and every table created there later"
                  for schema, count in self.readable_tables.items()]
        lines.append(f"  nothing on: {', '.join(self.revoked_schemas) or '(no other schema)'}")
        if self.revoked_memberships:
            lines.append(f"  removed from roles: {', '.join(self.revoked_memberships)}")
        return lines


def scram_sha256_verifier(password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The string PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802/7677), computed client-side."""
    salt = salt or os.urandom(16)
    # PostgreSQL normalizes with SASLprep; NFKC is its core and the same for every ASCII password.
    salted = hashlib.pbkdf2_hmac("sha256", unicodedata.normalize("NFKC", password).encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    encode = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{encode(salt)}${encode(stored_key)}:{encode(server_key)}"


def verifier_matches(verifier: str, password: str) -> bool:
    """Whether a stored SCRAM-SHA-256 verifier was made from `password`."""
    match = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", verifier or "")
    if not match:
        return False
    iterations, salt = int(match.group(1)), base64.b64decode(match.group(2))
    return hmac.compare_digest(scram_sha256_verifier(password, salt, iterations), verifier)


def ensure_bi_role(connection, config: BiRoleConfig, schemas: tuple[str, ...] = READABLE_SCHEMAS) -> BiRoleReport:
    """Create or update the role in one transaction; run it as the user that runs dbt, since default
    privileges apply to the tables that user creates."""
    role = sql.Identifier(config.role)
    with connection, connection.cursor() as cursor:
        cursor.execute("select current_user, current_database()")
        owner, database = cursor.fetchone()
        if config.role == owner:
            raise SettingsError(f"{BI_ROLE_ENV} names the warehouse's own user ({owner}); choose another role name")
        cursor.execute("select rolsuper from pg_roles where rolname = %s", (config.role,))
        existing = cursor.fetchone()
        if existing and existing[0]:
            raise SettingsError(f"role {config.role} exists and is a superuser; it cannot be made read-only")
        verb = sql.SQL("alter role" if existing else "create role")
        cursor.execute(sql.SQL("{} {} with login nosuperuser nocreatedb nocreaterole noinherit noreplication "
                               "nobypassrls password {}").format(
            verb, role, sql.Literal(scram_sha256_verifier(config.password))))
        cursor.execute(sql.SQL("alter role {} set default_transaction_read_only = on").format(role))

        cursor.execute("select r.rolname from pg_auth_members m join pg_roles r on r.oid = m.roleid "
                       "join pg_roles u on u.oid = m.member where u.rolname = %s order by 1", (config.role,))
        memberships = [name for (name,) in cursor.fetchall()]
        for name in memberships:
            cursor.execute(sql.SQL("revoke {} from {}").format(sql.Identifier(name), role))

        cursor.execute(sql.SQL("grant connect on database {} to {}").format(sql.Identifier(database), role))
        cursor.execute(f"select nspname from pg_namespace where {_SYSTEM_SCHEMAS} and nspname <> all(%s) "
                       "order by 1", (list(schemas),))
        others = [name for (name,) in cursor.fetchall()]
        for schema in others:
            cursor.execute(sql.SQL("revoke all on schema {schema} from {role}; "
                                   "revoke all on all tables in schema {schema} from {role}; "
                                   "revoke all on all sequences in schema {schema} from {role}").format(
                schema=sql.Identifier(schema), role=role))

        readable = {}
        for schema in schemas:
            names = {"schema": sql.Identifier(schema), "role": role}
            cursor.execute(sql.SQL("create schema if not exists {schema}").format(**names))
            cursor.execute(sql.SQL(
                "revoke all on schema {schema} from {role}; grant usage on schema {schema} to {role}; "
                "revoke all on all tables in schema {schema} from {role}; "
                "grant select on all tables in schema {schema} to {role}; "
                "alter default privileges in schema {schema} grant select on tables to {role}").format(**names))
            cursor.execute("select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                           "where n.nspname = %s and c.relkind in ('r', 'v', 'm', 'p')", (schema,))
            readable[schema] = cursor.fetchone()[0]
    return BiRoleReport(role=config.role, created=not existing, database=database, readable_tables=readable,
                        revoked_schemas=others, revoked_memberships=memberships)


def drop_bi_role(connection, role: str) -> bool:
    """Remove the role's privileges in this database and the role itself (if it has none elsewhere)."""
    if not _ROLE_NAME.match(role):
        raise SettingsError(f"not a role name: {role!r}")
    with connection, connection.cursor() as cursor:
        cursor.execute("select 1 from pg_roles where rolname = %s", (role,))
        if cursor.fetchone() is None:
            return False
        cursor.execute(sql.SQL("drop owned by {role}; drop role {role}").format(role=sql.Identifier(role)))
    return True
