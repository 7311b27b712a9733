"""What the sandbox generates and which credentials it accepts."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sandbox.scenarios import normalize


def stable_hex(*parts: object, length: int = 32) -> str:
    """A deterministic hex id derived from `parts`."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()
    return digest[:length]


def _yesterday_utc() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


@dataclass(frozen=True)
class SandboxConfig:
    """Seed and scale of the generated agency; equal configs generate equal data."""

    seed: int = 42
    clients: int = 3
    agents_per_client: int = 2
    days: int = 14
    calls_per_agent_per_day: int = 8
    end_date: date = field(default_factory=_yesterday_utc)
    retell_workspaces: int = 1
    corrupt_rate: float = 0.0  # share of records damaged on purpose (see sandbox.corruption)
    # planted anomalies, e.g. (("spike", 0, "2026-03-10", 4.0),); see sandbox.scenarios. None by default.
    scenarios: tuple[tuple, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "scenarios", normalize(self.scenarios))
        for kind, *arguments in self.scenarios:
            if kind in ("spike", "silent_client", "unregistered_agent") and arguments[0] >= self.clients:
                raise ValueError(f"{kind}: client index {arguments[0]} is out of range ({self.clients} clients)")

    @property
    def start_date(self) -> date:
        return self.end_date - timedelta(days=self.days - 1)

    @property
    def today(self) -> date:
        """The sandbox's 'today': the first day after the generated range."""
        return self.end_date + timedelta(days=1)

    def iter_days(self):
        for offset in range(self.days):
            yield self.start_date + timedelta(days=offset)

    # Credentials the sandbox accepts. They are fake and public on purpose.
    def retell_api_key(self, workspace: int = 0) -> str:
        return f"key_sandbox_retell_{workspace}"

    @property
    def twilio_account_sid(self) -> str:
        return "AC" + stable_hex(self.seed, "twilio-master")

    @property
    def twilio_auth_token(self) -> str:
        return "sandbox_twilio_auth_token"

    @property
    def openrouter_management_key(self) -> str:
        return "sk-or-v1-sandbox-management"

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["end_date"] = self.end_date.isoformat()
        data["scenarios"] = [list(entry) for entry in self.scenarios]
        return data

    @classmethod
    def from_json(cls, data: dict) -> SandboxConfig:
        values = dict(data)
        values["end_date"] = date.fromisoformat(values["end_date"])
        return cls(**values)
