"""The committed small references (tests/fixtures/small-home) are the current recipe's: else
every test session trains them again (minutes) and this says how to remake them."""

from pathlib import Path

from small import SMALL, SMALL_FIXTURE  # noqa: F401  (SMALL: the small references of this session)

PARTS = ("models/tiny-llava", "references/tiny-llava")


def names(home: Path) -> dict[str, set[str]]:
    return {part: {p.name for p in (home / part).iterdir()} for part in PARTS}


def test_the_committed_small_references_are_the_current_recipes(small_made):
    assert SMALL_FIXTURE.is_dir(), f"{SMALL_FIXTURE} is missing: run python scripts/train_small_references.py"
    session, committed = names(small_made), names(SMALL_FIXTURE)
    for part in PARTS:
        stale = session[part] - committed[part]
        assert not stale, (f"this session made {sorted(stale)} under {part}, which {SMALL_FIXTURE} lacks: the recipe, "
                           "the data or the tasks changed; run python scripts/train_small_references.py and commit it")
