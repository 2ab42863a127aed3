"""What a route's ``hours`` and ``weekdays`` mean: minutes of the week in Asia/Kolkata.

Part of the routes language, so one definition serves both ``validate`` (which compares
the minutes two rules hold, to find one an earlier rule always beats) and the routing
decisions (is a call inside a window now). Pure.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from reconciler.manifests.routes import WEEKDAYS

IST = timezone(timedelta(hours=5, minutes=30), "Asia/Kolkata")  # no daylight saving


def _minutes(text: str) -> int:
    hours, mins = text.split(":")
    return int(hours) * 60 + int(mins)


def _inside(window: str | None, weekdays: Sequence[str], day: int, minute: int) -> bool:
    """Whether minute ``minute`` of weekday ``day`` (0 = Monday, Asia/Kolkata) is in the
    window. A window across midnight belongs to the day it starts on: ``22:00-02:00`` on
    ``fri`` holds from Friday 22:00 to Saturday 02:00."""
    start_day = day
    if window is not None:
        first, last = (_minutes(part) for part in window.split("-"))
        if first < last:
            if not first <= minute < last:
                return False
        elif minute < last:
            start_day = (day - 1) % 7  # the tail of last night's window
        elif minute < first:
            return False
    return not weekdays or WEEKDAYS[start_day] in weekdays


def in_window(window: str | None, weekdays: Sequence[str], now: datetime) -> bool:
    local = now.astimezone(IST)
    return _inside(window, weekdays, local.weekday(), local.hour * 60 + local.minute)


@functools.lru_cache(maxsize=1024)
def week_minutes(window: str | None, weekdays: tuple[str, ...]) -> frozenset[int]:
    """Every minute of the week (``day * 1440 + minute``) the window holds: ``validate``
    compares these to find rules an earlier one always beats."""
    return frozenset(
        day * 1440 + minute
        for day in range(7)
        for minute in range(1440)
        if _inside(window, weekdays, day, minute)
    )
