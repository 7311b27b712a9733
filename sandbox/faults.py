"""Misbehaviour on request: 429 storms, 5xx responses and slow responses."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass


@dataclass
class FaultRule:
    provider: str  # "retell", "twilio", "openrouter" or "*"
    status: int | None  # None: answer normally, only slowly
    remaining: int
    delay_ms: int = 0
    retry_after: int | None = None  # seconds, sent as Retry-After


@dataclass(frozen=True)
class Fault:
    status: int | None
    delay_ms: int
    retry_after: int | None


class FaultInjector:
    """Rules consumed in order, plus optional random error and delay rates."""

    def __init__(self, error_rate: float = 0.0, slow_rate: float = 0.0, slow_ms: int = 0, seed: int = 0):
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.error_rate = error_rate
        self.slow_rate = slow_rate
        self.slow_ms = slow_ms
        self.injected = 0

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def next_fault(self, provider: str) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.remaining > 0 and rule.provider in ("*", provider):
                    rule.remaining -= 1
                    self.injected += 1
                    return Fault(rule.status, rule.delay_ms, rule.retry_after)
            if self.error_rate and self._rng.random() < self.error_rate:
                self.injected += 1
                return Fault(self._rng.choice((429, 500, 502, 503)), 0, None)
            if self.slow_rate and self._rng.random() < self.slow_rate:
                self.injected += 1
                return Fault(None, self.slow_ms, None)
        return None
