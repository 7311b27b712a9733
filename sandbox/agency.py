"""The generated agency: clients, agents, their provider resources, and the directory."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sandbox.config import SandboxConfig, stable_hex

TIMEZONES = (
    "America/New_York",
    "Europe/Berlin",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "America/St_Johns",
    "Pacific/Kiritimati",
    "Australia/Sydney",
)
ANCHOR_DAYS = (1, 15, 31, 10, 28, 1, 5)


@dataclass(frozen=True)
class Agent:
    agent_id: str
    client_id: str
    name: str
    retell_agent_id: str
    phone_number: str
    phone_number_sid: str


@dataclass(frozen=True)
class Client:
    index: int
    client_id: str
    name: str
    timezone: str
    billing_anchor_day: int
    currency: str
    retell_workspace: int
    twilio_subaccount_sid: str
    messaging_service_sid: str
    openrouter_key_hash: str
    openrouter_key_name: str
    agents: tuple[Agent, ...]


@lru_cache(maxsize=8)
def clients(config: SandboxConfig) -> tuple[Client, ...]:
    result = []
    for ci in range(config.clients):
        client_id = f"client_{ci + 1:03d}"
        agents = tuple(
            Agent(
                agent_id=f"{client_id}_agent_{aj + 1:02d}",
                client_id=client_id,
                name=f"Agent {aj + 1} of client {ci + 1}",
                retell_agent_id="agent_" + stable_hex(config.seed, "retell-agent", ci, aj, length=24),
                phone_number=f"+1202{ci + 1:03d}{aj + 1:04d}",
                phone_number_sid="PN" + stable_hex(config.seed, "number", ci, aj),
            )
            for aj in range(config.agents_per_client)
        )
        result.append(
            Client(
                index=ci,
                client_id=client_id,
                name=f"Client {ci + 1}",
                timezone=TIMEZONES[ci % len(TIMEZONES)],
                billing_anchor_day=ANCHOR_DAYS[ci % len(ANCHOR_DAYS)],
                currency="USD",
                retell_workspace=ci % config.retell_workspaces,
                twilio_subaccount_sid="AC" + stable_hex(config.seed, "subaccount", ci),
                messaging_service_sid="MG" + stable_hex(config.seed, "messaging", ci),
                openrouter_key_hash=stable_hex(config.seed, "openrouter-key", ci, length=64),
                openrouter_key_name=f"{client_id} production",
                agents=agents,
            )
        )
    return tuple(result)


def unregistered_agent(config: SandboxConfig, client: Client) -> Agent:
    """A Retell agent (with its own number) the client runs but the directory never lists: what the
    `unregistered_agent` scenario routes calls through (see sandbox.scenarios)."""
    return Agent(
        agent_id=f"{client.client_id}_agent_unregistered",
        client_id=client.client_id,
        name=f"Unregistered agent of client {client.index + 1}",
        retell_agent_id="agent_" + stable_hex(config.seed, "retell-agent-unregistered", client.index, length=24),
        phone_number=f"+1202{client.index + 1:03d}9999",
        phone_number_sid="PN" + stable_hex(config.seed, "number-unregistered", client.index),
    )


def directory(config: SandboxConfig) -> dict:
    """Clients, agents and effective-dated resource assignments, as the directory file holds them."""
    valid_from = config.start_date.isoformat() + "T00:00:00Z"
    all_clients = clients(config)
    assignments = []
    for client in all_clients:
        common = {"client_id": client.client_id, "valid_from": valid_from, "valid_to": None}
        assignments += [
            {**common, "resource_type": "twilio_subaccount", "resource_id": client.twilio_subaccount_sid,
             "agent_id": None},
            {**common, "resource_type": "twilio_messaging_service", "resource_id": client.messaging_service_sid,
             "agent_id": None},
            {**common, "resource_type": "openrouter_key", "resource_id": client.openrouter_key_hash,
             "agent_id": None},
        ]
        for agent in client.agents:
            assignments += [
                {**common, "resource_type": "retell_agent", "resource_id": agent.retell_agent_id,
                 "agent_id": agent.agent_id},
                {**common, "resource_type": "twilio_phone_number", "resource_id": agent.phone_number,
                 "agent_id": agent.agent_id},
            ]
    return {
        "clients": [
            {
                "client_id": c.client_id,
                "name": c.name,
                "timezone": c.timezone,
                "billing_anchor_day": c.billing_anchor_day,
                "currency": c.currency,
            }
            for c in all_clients
        ],
        "agents": [
            {"agent_id": a.agent_id, "client_id": a.client_id, "name": a.name}
            for c in all_clients
            for a in c.agents
        ],
        "resource_assignments": assignments,
    }
