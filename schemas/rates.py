"""A token bucket: the one rate rule of the API's per-key limits and of the provider
sandboxes' ceilings (SES's maximum send rate allows a burst of a second's sends, FCM's
quota the same)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Bucket:
    """A token bucket: `rate` a second, up to `burst` at once."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self) -> float:
        """0 when a request may go now (and it is counted), else the seconds until it may."""
        wait = self.wait()
        if wait == 0:
            self.tokens -= 1
        return wait

    def wait(self) -> float:
        """0 when a request may go now, else the seconds until it may (nothing counted)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate
