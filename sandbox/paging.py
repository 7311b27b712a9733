"""Cursor paging over day-ordered listings, so a page never needs more than a few days in memory."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import date


def encode_cursor(day_index: int, position: int) -> str:
    raw = json.dumps([day_index, position]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[int, int]:
    """Raises ValueError for a token this server did not hand out."""
    try:
        padded = token + "=" * (-len(token) % 4)
        day_index, position = json.loads(base64.urlsafe_b64decode(padded.encode()))
        day_index, position = int(day_index), int(position)
    except Exception as exc:  # noqa: BLE001 - any garbage is the same client error
        raise ValueError(f"invalid pagination token {token!r}") from exc
    if day_index < 0 or position < 0:
        raise ValueError(f"invalid pagination token {token!r}")
    return day_index, position


def page_through_days(
    days: Sequence[date],
    items_of_day: Callable[[date], list],
    limit: int,
    cursor: tuple[int, int] = (0, 0),
) -> tuple[list, tuple[int, int] | None]:
    """Up to `limit` items from `cursor` on, and the cursor of the next page (None at the end)."""
    day_index, position = cursor
    page: list = []
    while day_index < len(days):
        items = items_of_day(days[day_index])
        while position < len(items):
            if len(page) == limit:
                return page, (day_index, position)
            taken = items[position:position + limit - len(page)]
            page += taken
            position += len(taken)
        day_index, position = day_index + 1, 0
    return page, None
