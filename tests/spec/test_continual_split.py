"""Continual unlearning as a run asks for it (``mmu_bench.spec.continual``): the requests'
split, the ``continual`` block and its flags, the run key, the sweep axis. No data, no model."""

import os
import subprocess
import sys

import pytest

from mmu_bench.cli import make_parser
from mmu_bench.cli.options import build_config
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.core.storage import json_digest
from mmu_bench.harness.sweep import grid
from mmu_bench.spec.config import RunConfig
from mmu_bench.spec.continual import Continual, given_requests, nested_requests, split_people
from mmu_bench.spec.plan import for_run, one_shot_key, run_key

PEOPLE = [f"e{i:04d}" for i in range(10)]


def config_of(*flags: str) -> RunConfig:
    return build_config(make_parser().parse_args(["run", *flags]))


# -- the split ------------------------------------------------------------------------------------


def test_the_split_is_entity_disjoint_covers_the_forget_set_and_sizes_differ_by_at_most_one():
    for k in (1, 2, 3, 4, 7, 10):
        parts = split_people(PEOPLE, k, seed=0)
        assert len(parts) == k
        flat = [p for part in parts for p in part]
        assert sorted(flat) == PEOPLE and len(set(flat)) == len(flat)  # each person in exactly one request
        sizes = [len(part) for part in parts]
        assert max(sizes) - min(sizes) <= 1
        assert all(part == sorted(part) for part in parts)
    # 10 people in 3 requests: 4, 3, 3 (the first ones larger); 7 in 3: 3, 2, 2
    assert [len(p) for p in split_people(PEOPLE, 3, 0)] == [4, 3, 3]
    assert [len(p) for p in split_people(PEOPLE[:7], 3, 0)] == [3, 2, 2]
    assert [len(p) for p in split_people(PEOPLE, 4, 0)] == [3, 3, 2, 2]


def test_the_split_is_seeded_stable_and_ignores_the_order_given():
    first = split_people(PEOPLE, 3, seed=0)
    assert split_people(list(PEOPLE), 3, seed=0) == first  # the same input, the same split
    assert split_people(list(reversed(PEOPLE)), 3, seed=0) == first  # the order given does not matter
    shuffled = [PEOPLE[i] for i in (3, 7, 0, 9, 1, 5, 2, 8, 6, 4)]
    assert split_people(shuffled, 3, seed=0) == first
    assert split_people(PEOPLE, 3, seed=1) != first  # another split seed, another split
    assert split_people(PEOPLE, 3, seed=2) != first
    # ... and the same in another process, whatever its hash seed (shipped gold references
    # depend on which people each request holds).
    code = ("from mmu_bench.spec.continual import split_people; "
            f"print(split_people({list(reversed(PEOPLE))!r}, 3, 0))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout.strip()
    assert out == repr(first)


def test_the_split_of_one_request_is_the_whole_forget_set():
    assert split_people(list(reversed(PEOPLE)), 1, seed=5) == [PEOPLE]


def test_more_requests_than_forget_people_is_an_error_that_says_so():
    with pytest.raises(MMUBenchError, match=r"4 requests need at least 4 forget people; the forget set has 3"):
        split_people(PEOPLE[:3], 4, seed=0)


def test_nested_splits_give_each_request_the_people_its_split_adds():
    five, ten, fifteen = ["b"], ["a", "b"], ["d", "a", "c", "b"]
    assert nested_requests([five, ten, fifteen], [5, 10, 15]) == [["b"], ["a"], ["c", "d"]]
    assert nested_requests([five, ten], [5.0, 10.0]) == [["b"], ["a"]]


def test_splits_that_are_not_nested_or_add_nobody_are_errors_naming_the_split():
    with pytest.raises(MMUBenchError, match=r"the 10 % forget split does not hold the people of the one before it "
                                            r"\(x .*not nested"):
        nested_requests([["x"], ["a", "b"]], [5, 10])
    with pytest.raises(MMUBenchError, match=r"the 10 % forget split adds no people"):
        nested_requests([["a"], ["a"]], [5, 10])


def test_given_requests_are_checked_against_the_forget_set():
    assert given_requests([["c", "a"], ["b"]], ["a", "b", "c"]) == [["a", "c"], ["b"]]
    with pytest.raises(MMUBenchError, match=r"request 2 names zed, not in the benchmark's forget set of 3 people"):
        given_requests([["a"], ["zed", "b"]], ["a", "b", "c"])
    with pytest.raises(MMUBenchError, match=r"1 forget people are in no request \(c"):
        given_requests([["a"], ["b"]], ["a", "b", "c"])


# -- the continual block --------------------------------------------------------------------------


def test_the_block_counts_its_requests_and_only_more_than_one_is_a_stream():
    assert Continual.of(None).count == 1 and not Continual.of({}).active
    assert not Continual.of({"requests": 1}).active
    assert Continual.of({"requests": 3}).count == 3 and Continual.of({"requests": 3}).active
    assert Continual.of({"ratios": [5, 10]}).count == 2
    assert Continual.of({"ratios": [5, 10], "requests": 2}).count == 2
    assert Continual.of({"entities": [["a"], ["b"], ["c"]]}).count == 3
    assert Continual.of({"ratios": [5, 10]}).total_ratio(15) == 10  # the last split is the whole set
    assert Continual.of({"requests": 3, "total_forget_ratio": 15}).total_ratio(10) == 15
    assert Continual.of({"requests": 3}).total_ratio(10) == 10


def test_entity_ids_read_as_numbers_become_strings():
    block = Continual.of({"entities": [[101], [102, "103"]]})  # YAML reads MLLMU-Bench's ids as numbers
    assert block.entities == [["101"], ["102", "103"]]
    with pytest.raises(MMUBenchError, match=r"entity '101' is in requests 1 and 2"):
        Continual.of({"entities": [[101], ["101"]]})


@pytest.mark.parametrize("block,message", [
    ({"requests": 0}, r"requests must be an integer >= 1, got 0"),
    ({"requests": "3"}, r"requests must be an integer >= 1, got '3'"),
    ({"requests": True}, r"requests must be an integer >= 1, got True"),
    ({"request": 3}, r"unknown option\(s\) request; known: entities, ratios, requests, split_seed, "
                     r"total_forget_ratio"),
    ({"requests": 3, "split_seed": "x"}, r"split_seed must be an integer, got 'x'"),
    ({"ratios": [5, "ten"]}, r"ratios must be a list of numbers .* got \[5, 'ten'\]"),
    ({"ratios": 10}, r"ratios must be a list of numbers"),
    ({"ratios": [10, 5]}, r"ratios must increase \(nested forget splits\), got \[10, 5\]"),
    ({"ratios": [5, 5]}, r"ratios must increase"),
    ({"ratios": [5, 10], "requests": 3}, r"requests 3 does not match the 2 requests its ratios give"),
    ({"ratios": [5, 10], "entities": [["a"], ["b"]]}, r"give ratios or entities, not both"),
    ({"ratios": [5, 10], "total_forget_ratio": 15}, r"total forget ratio 15 is not the last of the ratios"),
    ({"requests": 2, "total_forget_ratio": "all"}, r"total_forget_ratio must be a number"),
    ({"entities": ["a", "b"]}, r"entities must be a list of requests, each a list of entity ids"),
    ({"entities": [["a"], []]}, r"request 2 of entities has no people"),
    ({"entities": [["a", "b"], ["b"]]}, r"entity 'b' is in requests 1 and 2; requests must not share people"),
    ({"entities": [["a"], ["b"]], "requests": 3}, r"requests 3 does not match the 2 requests its entities give"),
])
def test_a_bad_block_is_an_error_naming_the_problem(block, message):
    with pytest.raises(MMUBenchError, match=message):
        Continual.of(block)


def test_a_block_that_is_not_a_mapping_is_an_error():
    with pytest.raises(MMUBenchError, match=r"continual: expected a mapping of options .* got int 3"):
        Continual.of(3)


# -- flags and config files -----------------------------------------------------------------------


def test_requests_flags_make_the_continual_block():
    assert config_of("--requests", "3").continual == {"requests": 3}
    ratios = config_of("--request-ratios", "5,10")
    assert ratios.continual == {"ratios": [5.0, 10.0]} and ratios.forget_ratio == 10  # the last split
    total = config_of("--requests", "3", "--total-forget-ratio", "15")
    assert total.continual == {"requests": 3, "total_forget_ratio": 15.0} and total.forget_ratio == 15
    assert config_of().continual == {}


def test_flags_add_to_the_yaml_block_and_a_bad_block_fails_clearly(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("method: ga\ncontinual:\n  requests: 2\n  split_seed: 4\n")
    assert config_of("--config", str(path)).continual == {"requests": 2, "split_seed": 4}
    assert config_of("--config", str(path), "--requests", "5").continual == {"requests": 5, "split_seed": 4}
    path.write_text("method: ga\ncontinual:\n  requets: 2\n")
    with pytest.raises(MMUBenchError, match=r"continual: unknown option\(s\) requets"):
        config_of("--config", str(path))
    with pytest.raises(MMUBenchError, match=r"--requests"):
        config_of("--requests", "three")
    with pytest.raises(MMUBenchError, match=r"--request-ratios expects numbers separated by commas, got '5,x'"):
        config_of("--request-ratios", "5,x")
    with pytest.raises(MMUBenchError, match=r"requests must be an integer >= 1, got 0"):
        config_of("--requests", "0")


def test_a_yaml_block_that_is_not_a_mapping_fails_clearly(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("method: ga\ncontinual: 3\n")
    with pytest.raises(MMUBenchError, match=r"continual: expected a mapping"):
        config_of("--config", str(path))


# -- the run key ----------------------------------------------------------------------------------


def todays_key(config: RunConfig, method: dict) -> str:
    """The run key as it was before continual runs, for a config of defaults but the method and
    forget ratio: written out by hand."""
    return json_digest({
        "method": {k: method[k] for k in ("name", "source_sha256", "config")},
        "seed": 0, "forget_ratio": config.forget_ratio, "benchmark": "mmu-synth", "benchmark_args": {},
        "model": "tiny-llava", "model_args": {}, "tasks": None, "eval_limit": None, "trajectory": [8, 24],
    }, 20)


def test_one_request_keeps_todays_run_key_and_more_change_it():
    plain = for_run(config_of("--method", "ga"), progress=False)
    method = plain.method
    assert plain.key == todays_key(plain.config, method) == run_key(RunConfig(method="ga"), method)
    assert for_run(config_of("--method", "ga", "--requests", "1"), progress=False).key == plain.key
    three = for_run(config_of("--method", "ga", "--requests", "3"), progress=False)
    assert three.key != plain.key
    assert for_run(config_of("--method", "ga", "--requests", "2"), progress=False).key not in (plain.key, three.key)
    seeded = RunConfig(method="ga", continual={"requests": 3, "split_seed": 1})
    assert run_key(seeded, method) != three.key  # another split, another run
    # ... and each is compared with the one-shot run on the same people: today's key.
    assert one_shot_key(three.config, method) == plain.key
    assert one_shot_key(seeded, method) == plain.key
    nested = RunConfig(method="ga", forget_ratio=5, continual={"ratios": [5, 10]})
    assert nested.forget_ratio == 10 and one_shot_key(nested, method) == plain.key
    assert run_key(nested, method) not in (plain.key, three.key)


def test_a_sweep_has_a_requests_axis():
    base = RunConfig(method="ga")
    points = grid(base, ["ga"], [0, 1], [10], {}, [1, 3])
    assert [(p.seed, p.continual) for p in points] == [(0, {}), (1, {}), (0, {"requests": 3}),
                                                       (1, {"requests": 3})]
    method = for_run(RunConfig(method="ga"), progress=False).method
    keys = [run_key(p, method) for p in points]
    assert keys[0] == run_key(base, method) and len(set(keys)) == 4
    assert one_shot_key(points[2], method) == keys[0] and one_shot_key(points[3], method) == keys[1]
    # the block's other options stay; one request drops only its count
    seeded = RunConfig(method="ga", continual={"requests": 5, "split_seed": 2})
    assert [p.continual for p in grid(seeded, ["ga"], [0], [10], {}, [1, 4])] == [{"split_seed": 2},
                                                                                 {"requests": 4, "split_seed": 2}]
    assert [p.continual for p in grid(seeded, ["ga"], [0], [10], {})] == [{"requests": 5, "split_seed": 2}]
    with pytest.raises(MMUBenchError, match=r"--requests must be at least 1"):
        grid(base, ["ga"], [0], [10], {}, [0, 3])


def test_sweep_flags_give_the_requests_axis(monkeypatch):
    from mmu_bench.cli import main

    seen = {}

    def fake_sweep(configs, progress=True, launch=None):
        seen["configs"] = configs
        return []

    monkeypatch.setattr("mmu_bench.harness.sweep.sweep", fake_sweep)
    assert main(["sweep", "--methods", "ga", "--requests", "1,3", "--quiet"]) == 0
    assert [c.continual for c in seen["configs"]] == [{}, {"requests": 3}]
