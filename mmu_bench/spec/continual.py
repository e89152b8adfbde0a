"""Continual unlearning, as a run asks for it: a stream of deletion requests, each unlearned on
top of the model the last one left (``mmu_bench.harness.continual`` runs it).

A run's ``continual`` block (YAML) or ``--requests`` / ``--request-ratios`` /
``--total-forget-ratio`` say how many requests there are and how the forget people are split
into them:

- ``requests: K``: the forget set (``--forget-ratio``, or ``total_forget_ratio``) is split into
  K entity-disjoint requests of equal sizes (the first ones one larger when K does not divide
  it), drawn with ``split_seed`` (not the run's seed: every seed of a comparison forgets the
  same people in the same order, so one set of gold references serves them all);
- ``ratios: [5, 10]``: the benchmark's own nested forget splits, request 1 the people of the
  5 % split, request 2 the rest of the 10 % split (as PULSE splits MLLMU-Bench);
- ``entities: [[id, ...], [id, ...]]``: the people of each request, given.

No torch here: a plan is checked before any model is loaded.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields

from mmu_bench.core.errors import MMUBenchError


@dataclass
class Continual:
    requests: int = 1
    split_seed: int = 0
    ratios: list[float] | None = None  # nested forget splits, smallest first; the last is the whole set
    entities: list[list[str]] | None = None  # the people of each request, given
    total_forget_ratio: float | None = None  # the whole stream's forget set (sets --forget-ratio)

    @classmethod
    def of(cls, block: dict | None) -> Continual:
        """The ``continual`` block of a config, checked; an unknown key is an error naming it."""
        if block is not None and not isinstance(block, dict):
            raise MMUBenchError(f"continual: expected a mapping of options (requests, split_seed, ratios, entities, "
                                f"total_forget_ratio), got {type(block).__name__} {block!r}")
        block = dict(block or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(block) - known)
        if unknown:
            raise MMUBenchError(f"continual: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        out = cls(**block)
        out.validate()
        return out

    @property
    def count(self) -> int:
        """How many requests the stream has."""
        if self.entities:
            return len(self.entities)
        if self.ratios:
            return len(self.ratios)
        return self.requests

    @property
    def active(self) -> bool:
        """A stream of more than one request (one request is an ordinary run, with its key)."""
        return self.count > 1

    def validate(self) -> None:
        """Every option's type and value, and how they fit together; entity ids become strings
        (YAML reads ``[[101], [102]]`` as numbers, the benchmarks' ids are strings)."""
        if not _integer(self.requests) or self.requests < 1:
            raise MMUBenchError(f"continual: requests must be an integer >= 1, got {self.requests!r}")
        if not _integer(self.split_seed):
            raise MMUBenchError(f"continual: split_seed must be an integer, got {self.split_seed!r}")
        if self.total_forget_ratio is not None and not _number(self.total_forget_ratio):
            raise MMUBenchError(f"continual: total_forget_ratio must be a number (a percentage), got "
                                f"{self.total_forget_ratio!r}")
        if self.ratios is not None and (not isinstance(self.ratios, (list, tuple))
                                        or not all(_number(r) for r in self.ratios)):
            raise MMUBenchError(f"continual: ratios must be a list of numbers (the benchmark's nested forget splits, "
                                f"smallest first), got {self.ratios!r}")
        if self.entities is not None:
            if not isinstance(self.entities, (list, tuple)) or not all(isinstance(p, (list, tuple))
                                                                         for p in self.entities):
                raise MMUBenchError("continual: entities must be a list of requests, each a list of entity ids "
                                    f"(e.g. [[a, b], [c]]), got {self.entities!r}")
            self.entities = [[str(person) for person in people] for people in self.entities]
        given = [name for name in ("ratios", "entities") if getattr(self, name)]
        if len(given) > 1:
            raise MMUBenchError("continual: give ratios or entities, not both")
        if given and self.requests not in (1, self.count):
            raise MMUBenchError(f"continual: requests {self.requests} does not match the {self.count} requests "
                                f"its {given[0]} give")
        if self.ratios:
            ratios = [float(r) for r in self.ratios]
            if any(b <= a for a, b in zip(ratios, ratios[1:])):
                raise MMUBenchError(f"continual: ratios must increase (nested forget splits), got {self.ratios}")
            if self.total_forget_ratio is not None and float(self.total_forget_ratio) != ratios[-1]:
                raise MMUBenchError(f"continual: total forget ratio {self.total_forget_ratio} is not the last of "
                                    f"the ratios {self.ratios}")
        if self.entities:
            seen: dict[str, int] = {}
            for i, people in enumerate(self.entities, 1):
                if not people:
                    raise MMUBenchError(f"continual: request {i} of entities has no people")
                for person in people:
                    if person in seen:
                        raise MMUBenchError(f"continual: entity {person!r} is in requests {seen[person]} and {i}; "
                                            "requests must not share people")
                    seen[person] = i

    def total_ratio(self, forget_ratio: float) -> float:
        """The forget ratio of the whole stream: the last nested split, the given total, or the
        run's forget ratio."""
        if self.ratios:
            return plain_ratio(self.ratios[-1])
        if self.total_forget_ratio is not None:
            return plain_ratio(self.total_forget_ratio)
        return forget_ratio

    def key(self) -> dict:
        """What the run key records of the stream (only for an active one)."""
        out = {"requests": self.count}
        if self.ratios:
            out["ratios"] = [float(r) for r in self.ratios]
        elif self.entities:
            out["entities"] = [list(p) for p in self.entities]
        else:
            out["split_seed"] = self.split_seed
        return out

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _integer(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x  # not NaN


def plain_ratio(x) -> float | int:
    """A forget ratio as adapters and folder names take it: 10, not 10.0."""
    x = float(x)
    return int(x) if x.is_integer() else x


def split_people(forget: list[str], k: int, seed: int) -> list[list[str]]:
    """``forget`` into ``k`` entity-disjoint requests of equal sizes (the first ``len % k`` one
    larger), in a seeded order that depends on the set only (not on the order given)."""
    people = sorted(forget)
    if k > len(people):
        raise MMUBenchError(f"continual: {k} requests need at least {k} forget people; the forget set has "
                            f"{len(people)} (raise --forget-ratio or lower --requests)")
    random.Random(f"continual/{seed}").shuffle(people)
    size, extra = divmod(len(people), k)
    out, start = [], 0
    for i in range(k):
        end = start + size + (i < extra)
        out.append(sorted(people[start:end]))
        start = end
    return out


def nested_requests(sets: list[list[str]], ratios: list[float]) -> list[list[str]]:
    """Requests from nested forget sets (one per ratio, smallest first): each request is its
    set minus the one before. Sets that are not nested are an error naming the ratios."""
    out, before = [], set()
    for ratio, people in zip(ratios, sets):
        now = set(people)
        if not before <= now:
            missing = sorted(before - now)
            raise MMUBenchError(f"continual: the {ratio:g} % forget split does not hold the people of the one before "
                                f"it ({', '.join(missing[:5])} ...): its splits are not nested; give entities instead")
        fresh = sorted(now - before)
        if not fresh:
            raise MMUBenchError(f"continual: the {ratio:g} % forget split adds no people to the one before it")
        out.append(fresh)
        before = now
    return out


def given_requests(entities: list[list[str]], forget: list[str]) -> list[list[str]]:
    """The requests given by entity id, each checked against the forget set of the stream."""
    known = set(forget)
    for i, people in enumerate(entities, 1):
        stray = [p for p in people if p not in known]
        if stray:
            raise MMUBenchError(f"continual: request {i} names {', '.join(map(str, stray[:5]))}, not in the benchmark's "
                                f"forget set of {len(known)} people")
    left = sorted(known - {p for people in entities for p in people})
    if left:
        raise MMUBenchError(f"continual: {len(left)} forget people are in no request ({', '.join(left[:5])} ...): the "
                            "requests must cover the forget set, whose one-shot run they are compared with")
    return [sorted(map(str, p)) for p in entities]
