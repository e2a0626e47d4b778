"""Which apps are visible now. While one is, on any device, nothing is pushed.

The web app says `visible: true` when it comes to the front and every ~20 s while it stays there, and
`visible: false` when it goes to the back. A device that vanishes without a word (the phone locked, the
browser killed, the network gone) stops beating, so a "visible" counts only for `bound` seconds after it
was said: a push is then held back at most that long after the user last looked.

The decision is the server's: the service worker must show every push it gets (iOS revokes a
subscription that receives silent pushes), so a push that should not be seen is never sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

#: apps (tabs, devices) remembered at once; the one heard from longest ago goes first
MAX_CLIENTS = 64


@dataclass(frozen=True)
class Beat:
    """What an app last said: visible or not, and when (monotonic seconds)."""

    visible: bool
    at: float


def app_visible(beats: Mapping[str, Beat], now: float, bound: float) -> bool:
    """Is the app in front on some device: one whose last word, no older than `bound`, was "visible"?"""
    return any(beat.visible and 0.0 <= now - beat.at <= bound for beat in beats.values())


class Presence:
    """The last beat of each app (a random id the app makes per page), bounded in number."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.beats: dict[str, Beat] = {}

    def beat(self, client: str, visible: bool) -> None:
        self.beats.pop(client, None)  # re-inserted last: the dict stays in the order apps were heard
        self.beats[client] = Beat(visible, self._clock())
        while len(self.beats) > MAX_CLIENTS:
            del self.beats[next(iter(self.beats))]

    def visible(self, bound: float) -> bool:
        return app_visible(self.beats, self._clock(), bound)
