"""Objects the listing endpoints leave out, as if the provider's API had failed to return them.

A planted gap for coverage tests: a hidden object is still generated, still counted in the providers'
own totals (Twilio Usage Records, OpenRouter /credits and each key's `usage`), still fetched by id
(Retell get-call, Twilio Fetch Call / Fetch Message) and still delivered by webhooks; only the lists a
collector pages through skip it. Nothing else in the data or its format changes. Control:

    POST   /_sandbox/hidden {"ids": [...]}   hide these objects (added to those already hidden)
    GET    /_sandbox/hidden                  the ids hidden now
    DELETE /_sandbox/hidden                  hide nothing any more

Ids are the providers' own:

| id | left out of |
|---|---|
| a Retell `call_id` | `POST /v3/list-calls` items |
| a Twilio call or message sid | `GET .../Calls.json`, `GET .../Messages.json` |
| an OpenRouter key hash | `GET /api/v1/keys` (so a collector never asks for that key's activity) |
| `<key hash>:<YYYY-MM-DD>:<model_permaslug>` | that row of `GET /api/v1/activity?api_key_hash=<key hash>` |

`/activity` without `api_key_hash` (rows summed over keys) is served unchanged. A page that loses items
keeps its paging links, so a collector still reaches every page.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from sandbox.http_types import Request

TWILIO_LISTS = ("calls", "messages")


class HiddenObjects:
    """The ids the listing endpoints leave out; the set is replaced, never mutated, so readers need no lock."""

    def __init__(self) -> None:
        self.ids: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def hide(self, ids: Iterable[str]) -> None:
        ids = frozenset(ids)
        with self._lock:
            self.ids |= ids

    def clear(self) -> None:
        with self._lock:
            self.ids = frozenset()

    def report(self) -> dict:
        return {"hidden_ids": sorted(self.ids)}

    def apply(self, provider: str, request: Request, body: object) -> object:
        """A copy of a listing's response body without the hidden objects; any other body as it is."""
        hidden = self.ids
        if not hidden or not isinstance(body, dict):
            return body
        if provider == "retell" and isinstance(body.get("items"), list):
            return dict(body, items=[c for c in body["items"] if c.get("call_id") not in hidden])
        if provider == "twilio":
            lists = {key: [r for r in body[key] if r.get("sid") not in hidden]
                     for key in TWILIO_LISTS if isinstance(body.get(key), list)}
            return dict(body, **lists) if lists else body
        if provider == "openrouter" and isinstance(body.get("data"), list):
            if request.path.endswith("/keys"):
                return dict(body, data=[k for k in body["data"] if k.get("hash") not in hidden])
            key_hash = request.arg("api_key_hash")
            if request.path.endswith("/activity") and key_hash:
                return dict(body, data=[row for row in body["data"]
                                        if activity_id(key_hash, row) not in hidden])
        return body


def activity_id(key_hash: str, row: dict) -> str:
    """The id that hides one OpenRouter activity row: key hash, UTC day and model permaslug."""
    return f"{key_hash}:{row.get('date')}:{row.get('model_permaslug')}"
