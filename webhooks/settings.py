"""Receiver settings: the signing secrets come from the collectors' own (dlt) configuration, the rest from
the project's settings."""

from __future__ import annotations

from dataclasses import dataclass

import dlt

from billing_usage.settings import Settings
from billing_usage.signatures import TwilioSharedKey

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class WebhookSettings:
    retell_api_keys: tuple[str, ...]     # Retell signs with the workspace API key
    twilio_auth_tokens: tuple[str, ...]  # Twilio signs with the account's auth token
    public_url: str | None = None        # the URL the providers call, when behind a proxy
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    twilio_shared_keys: tuple[TwilioSharedKey, ...] = ()  # or with a webhooks SharedKey, named in a header

    def __repr__(self) -> str:  # never print secrets
        return (f"WebhookSettings(retell_api_keys=<{len(self.retell_api_keys)}>, "
                f"twilio_auth_tokens=<{len(self.twilio_auth_tokens)}>, "
                f"twilio_shared_keys=<{len(self.twilio_shared_keys)}>, public_url={self.public_url!r})")

    def twilio_shared_key_secrets(self, key_id: str | None) -> tuple[str, ...]:
        return tuple(key.secret for key in self.twilio_shared_keys if key.id == key_id)

    @classmethod
    def from_config(cls, settings: Settings) -> WebhookSettings:
        """sources.retell.workspaces[].api_key and sources.twilio.accounts[].auth_token, plus
        sources.twilio.webhook_auth_tokens for subaccounts with tokens of their own, and
        sources.twilio.webhook_shared_keys for webhooks signed with a SharedKey: a list of
        {"id": "<the SharedKey id, as in key=... of X-Twilio-Webhooks-Signature-Settings>",
         "secret": "<the secret Twilio returned when the SharedKey was created>"}."""
        workspaces = dlt.secrets.get("sources.retell.workspaces", list) or []
        accounts = dlt.secrets.get("sources.twilio.accounts", list) or []
        extra_tokens = dlt.secrets.get("sources.twilio.webhook_auth_tokens", list) or []
        shared_keys = dlt.secrets.get("sources.twilio.webhook_shared_keys", list) or []
        return cls(
            retell_api_keys=tuple(w["api_key"] for w in workspaces),
            twilio_auth_tokens=tuple(a["auth_token"] for a in accounts) + tuple(extra_tokens),
            public_url=settings.webhooks_public_url,
            max_body_bytes=settings.webhooks_max_body_bytes,
            twilio_shared_keys=tuple(TwilioSharedKey(k["id"], k["secret"]) for k in shared_keys),
        )
