"""Errors a user sees, and the "did you mean" helper they share."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MMUBenchError(Exception):
    """A problem with the user's input or environment; the CLI prints it without a traceback."""


class UnknownNameError(MMUBenchError, KeyError):
    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} Known: {', '.join(known) or '(none)'}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]
