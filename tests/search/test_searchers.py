"""Searchers: exact budgets, no duplicates, evolution, resume, budgets."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from ray.tune.search import Searcher

from recnas.search.searchers import (
    EvolutionSearcher,
    RandomSearcher,
    build_searcher,
)
from recnas.space.arch import Architecture
from recnas.space.spec import load_space

SPACE = load_space("nasrec_small")


def score_of(config: dict) -> float:
    """A deterministic stand-in score: wider last blocks score better."""
    arch = Architecture.from_dict(config["arch"])
    return 1.0 / (1 + sum(b.width for b in arch.blocks))


def drive(searcher: Searcher, fail_every: int = 0) -> list[dict]:
    """Asks and tells, one trial at a time, until the searcher is done."""
    configs = []
    for i in range(10_000):
        config = searcher.suggest(f"t{i}")
        if config == Searcher.FINISHED:
            return configs
        assert config is not None
        configs.append(config)
        failed = fail_every and i % fail_every == fail_every - 1
        result = {"val_logloss": math.nan if failed else score_of(config)}
        searcher.on_trial_complete(f"t{i}", result)
    raise AssertionError("searcher never finished")


@pytest.mark.parametrize("kind", ["regularized_evolution", "evolution", "random"])
def test_budget_is_exact_and_ids_unique(kind: str) -> None:
    options = (
        {}
        if kind == "random"
        else {"population_size": 6, "sample_size": 3, "children": 2}
    )
    searcher = build_searcher(kind, SPACE, budget=20, seed=1, **options)
    configs = drive(searcher, fail_every=5)
    assert len(configs) == 20
    assert len({c["arch_id"] for c in configs}) == 20
    for c in configs:
        Architecture.from_dict(c["arch"]).validate(SPACE)
    assert sum(r["score"] is None for r in searcher.history) == 4


def test_evolution_breeds_from_the_best_and_ages() -> None:
    searcher = EvolutionSearcher(
        SPACE, budget=30, seed=3, population_size=5, sample_size=5, children=3
    )
    configs = drive(searcher)
    assert [c["origin"] for c in configs[:5]] == ["random"] * 5
    assert all(c["origin"].startswith("generation-") for c in configs[5:])
    assert len(searcher.population) == 5
    # Aging keeps the newest members: the last five scored.
    newest = [r["arch_id"] for r in searcher.history[-5:]]
    assert [r["arch_id"] for r in searcher.population] == newest
    # With the tournament over the whole population, every child's parent was
    # the best member at breeding time, so the scores improve on random ones.
    best_random = min(score_of(c) for c in configs[:5])
    assert min(score_of(c) for c in configs[5:]) <= best_random


def test_without_aging_keeps_the_best() -> None:
    searcher = EvolutionSearcher(
        SPACE,
        budget=25,
        seed=4,
        population_size=4,
        sample_size=2,
        children=2,
        aging=False,
    )
    drive(searcher)
    kept = sorted(r["score"] for r in searcher.population)
    assert kept == sorted(r["score"] for r in searcher.history)[:4]


def test_waits_while_the_initial_population_runs() -> None:
    searcher = EvolutionSearcher(
        SPACE, budget=10, seed=0, population_size=2, sample_size=1, children=2
    )
    assert searcher.suggest("a") is not None
    assert searcher.suggest("b") is not None
    assert searcher.suggest("c") is None  # nothing scored yet to breed from
    searcher.on_trial_complete("a", {"val_logloss": 0.5})
    assert searcher.suggest("c")["origin"] == "generation-1"


def test_a_population_that_all_failed_is_an_error_not_a_wait() -> None:
    searcher = EvolutionSearcher(
        SPACE, budget=10, seed=0, population_size=2, sample_size=1, children=2
    )
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.on_trial_complete("a", {"val_logloss": math.nan, "status": "diverged"})
    assert searcher.suggest("c") is None  # "b" may still be scored
    searcher.on_trial_complete("b", {"val_logloss": math.nan, "status": "diverged"})
    with pytest.raises(ValueError, match=r"all of the 2 initial .*\(2 diverged\)"):
        searcher.suggest("c")


def test_state_round_trip_continues_identically(tmp_path: Path) -> None:
    def make() -> EvolutionSearcher:
        return EvolutionSearcher(
            SPACE, budget=16, seed=9, population_size=4, sample_size=2, children=2
        )

    straight = drive(make())
    first = make()
    for i in range(7):
        config = first.suggest(f"t{i}")
        first.on_trial_complete(f"t{i}", {"val_logloss": score_of(config)})
    first.save(str(tmp_path / "state.pkl"))
    second = make()
    second.restore(str(tmp_path / "state.pkl"))
    rest = []
    for i in range(7, 100):
        config = second.suggest(f"t{i}")
        if config == Searcher.FINISHED:
            break
        rest.append(config)
        second.on_trial_complete(f"t{i}", {"val_logloss": score_of(config)})
    assert [c["arch_id"] for c in rest] == [c["arch_id"] for c in straight[7:]]


def test_constraint_rejects_before_scoring() -> None:
    def small_only(arch: Architecture) -> str | None:
        return "too wide" if max(b.width for b in arch.blocks) > 512 else None

    searcher = RandomSearcher(SPACE, budget=5, seed=2, constraint=small_only)
    configs = drive(searcher)
    assert len(configs) == 5
    assert all(small_only(Architecture.from_dict(c["arch"])) is None for c in configs)
    assert searcher.rejected and all(
        r["reason"] == "too wide" for r in searcher.rejected
    )


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="unknown 'annealing'"):
        build_searcher("annealing", SPACE, budget=3, seed=0)
    with pytest.raises(ValueError, match="sample_size"):
        build_searcher(
            "evolution", SPACE, budget=3, seed=0, population_size=2, sample_size=3
        )
    with pytest.raises(ValueError, match="budget"):
        RandomSearcher(SPACE, budget=0)
