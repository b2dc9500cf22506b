"""Ask-and-tell searchers over architectures, as Ray Tune ``Searcher``s.

Tune asks ``suggest(trial_id)`` for the next candidate and tells
``on_trial_complete(trial_id, result)`` its score; scheduling, concurrency and
resume belong to Tune. Every searcher here:

- proposes only valid architectures of its space, never one whose
  architecture id it proposed before (across a resume too: the ids are in the
  saved state);
- stops at exactly ``budget`` suggestions (``Searcher.FINISHED``);
- records a failed or diverged candidate (no finite score) and never breeds
  from it;
- rejects, without a trial, a candidate that a ``constraint`` refuses (for
  example a multiply-add budget); rejections are kept in ``rejected``.

Regularized evolution (Real et al., 2019; NASRec's search) keeps a population
of the ``population_size`` most recent scored candidates. Each generation draws
``sample_size`` of them, mutates the best into ``children`` children and, with
aging, retires the oldest members as the children arrive::

    random x P --> population (FIFO, P)
                      | draw S, take best
                      v
                  parent --mutate--> C children --scored--> population
"""

from __future__ import annotations

import logging
import math
import pickle
import random
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from ray.tune.search import Searcher

from recnas.space.arch import Architecture
from recnas.space.sampling import mutate, mutation_schedule, sample
from recnas.space.spec import SearchSpace

logger = logging.getLogger(__name__)

Constraint = Callable[[Architecture], str | None]

SEARCHERS = ("regularized_evolution", "evolution", "random")


class ArchitectureSearcher(Searcher):
    """What every architecture searcher shares: budget, duplicates, history.

    Args:
        space: The search space to propose from.
        budget: Exact number of candidates to suggest.
        seed: Seed of the searcher's own random stream.
        metric: Result key to minimize.
        constraint: Returns a reason to reject an architecture before it is
            scored, or None to accept it.
        max_attempts: Proposals tried per suggestion before giving up on
            finding a new, accepted architecture.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        budget: int,
        seed: int = 0,
        metric: str = "val_logloss",
        constraint: Constraint | None = None,
        max_attempts: int = 1000,
    ) -> None:
        super().__init__(metric=metric, mode="min")
        if budget < 1:
            raise ValueError(f"search budget must be at least 1, got {budget}")
        self.space = space
        self.budget = budget
        self.constraint = constraint
        self.max_attempts = max_attempts
        self.rng = random.Random(seed)
        self.suggested = 0
        self.seen: set[str] = set()
        self.pending: dict[str, dict[str, Any]] = {}
        self.history: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []

    # Tune interface -------------------------------------------------------

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.suggested >= self.budget:
            return Searcher.FINISHED
        proposal = self._next_new()
        if proposal is None:
            return None
        arch, origin = proposal
        entry = {
            "index": self.suggested,
            "arch": arch.to_dict(),
            "arch_id": arch.arch_id,
            "origin": origin,
        }
        self.suggested += 1
        self.pending[trial_id] = entry
        return dict(entry)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        entry = self.pending.pop(trial_id, None)
        if entry is None:
            return
        score = None if error or not result else result.get(self.metric)
        ok = score is not None and math.isfinite(float(score))
        record = dict(entry, trial_id=trial_id, score=float(score) if ok else None)
        record["status"] = "ok" if ok else (result or {}).get("status", "failed")
        self.history.append(record)
        if ok:
            self._learn(record)
        else:
            error = (result or {}).get("error")
            detail = f" ({error})" if error else ""
            logger.warning(
                "candidate %s failed: %s%s", entry["arch_id"], record["status"], detail
            )

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict, **spec: Any
    ) -> bool:
        # The space comes from the constructor; Tune's metric/mode must agree.
        if metric and metric != self.metric or mode and mode != "min":
            raise ValueError(
                f"this searcher minimizes {self.metric!r}; Tune asked for "
                f"{mode} {metric!r}"
            )
        return True

    def get_state(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["rng"] = self.rng.getstate()
        state.pop("constraint", None)
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        rng_state = state.pop("rng")
        constraint = self.constraint
        self.__dict__.update(state)
        self.rng = random.Random()
        self.rng.setstate(rng_state)
        self.constraint = constraint

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))
        logger.info(
            "searcher restored: %d suggested, %d scored, %d pending",
            self.suggested,
            len(self.history),
            len(self.pending),
        )

    # For subclasses -------------------------------------------------------

    def _propose(self) -> tuple[Architecture, str] | None:
        """The next architecture and its origin, or None to wait for results."""
        raise NotImplementedError

    def _learn(self, record: dict[str, Any]) -> None:
        """Takes in a scored candidate."""

    def _next_new(self) -> tuple[Architecture, str] | None:
        for _ in range(self.max_attempts):
            proposal = self._propose()
            if proposal is None:
                return None
            arch, origin = proposal
            if arch.arch_id in self.seen:
                continue
            self.seen.add(arch.arch_id)
            reason = self.constraint(arch) if self.constraint else None
            if reason is not None:
                self.rejected.append({"arch_id": arch.arch_id, "reason": reason})
                continue
            return arch, origin
        raise ValueError(
            f"search: no new architecture accepted in {self.max_attempts} "
            f"proposals: the space {self.space.name!r} is nearly exhausted or the "
            "budgets reject almost everything; lower the search budget or relax "
            "the budgets"
        )

    def best(self, k: int = 1) -> list[dict[str, Any]]:
        """The ``k`` best scored candidates, best first."""
        scored = [r for r in self.history if r["score"] is not None]
        return sorted(scored, key=lambda r: r["score"])[:k]


class RandomSearcher(ArchitectureSearcher):
    """Uniform samples from the space: the control every search is held to."""

    def _propose(self) -> tuple[Architecture, str]:
        return sample(self.space, self.rng), "random"


class EvolutionSearcher(ArchitectureSearcher):
    """Tournament evolution, with aging (regularized) or without.

    Args:
        population_size: P, members kept.
        sample_size: S, members drawn for each tournament.
        children: C, children bred from each tournament's winner.
        aging: Retire the oldest member (regularized evolution) instead of
            the worst.
        **kwargs: See :class:`ArchitectureSearcher`.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        population_size: int = 128,
        sample_size: int = 64,
        children: int = 8,
        aging: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(space, **kwargs)
        if not 1 <= sample_size <= population_size:
            raise ValueError(
                f"search.sample_size must be between 1 and population_size "
                f"({population_size}), got {sample_size}"
            )
        if children < 1:
            raise ValueError(f"search.children must be >= 1, got {children}")
        self.population_size = population_size
        self.sample_size = sample_size
        self.children = children
        self.aging = aging
        self.generations = max(1, -(-(self.budget - population_size) // children))
        self.population: deque[dict[str, Any]] = deque()
        self.queue: deque[Architecture] = deque()
        self.generation = 0

    def _propose(self) -> tuple[Architecture, str] | None:
        if self.suggested < self.population_size:
            return sample(self.space, self.rng), "random"
        if not self.queue:
            if not self.population:
                if self.pending:
                    return None  # every initial candidate is still running
                raise ValueError(self._nothing_to_breed())
            self._breed()
        return self.queue.popleft(), f"generation-{self.generation}"

    def _nothing_to_breed(self) -> str:
        statuses = Counter(r["status"] for r in self.history)
        counts = ", ".join(f"{n} {status}" for status, n in statuses.most_common())
        return (
            f"search: all of the {len(self.history)} initial candidates "
            f"failed ({counts}), so evolution has none to breed from; when they "
            "all diverged, the supernet itself most likely diverged (see the "
            "supernet stage's train_loss and lower supernet.lr)"
        )

    def _breed(self) -> None:
        size = min(self.sample_size, len(self.population))
        contestants = self.rng.sample(list(self.population), size)
        parent = min(contestants, key=lambda r: r["score"])
        arch = Architecture.from_dict(parent["arch"])
        n = mutation_schedule(self.generation, self.generations)
        self.generation += 1
        for _ in range(self.children):
            self.queue.append(mutate(arch, self.space, self.rng, num_mutations=n))

    def _learn(self, record: dict[str, Any]) -> None:
        self.population.append(record)
        if len(self.population) <= self.population_size:
            return
        if self.aging:
            self.population.popleft()
        else:
            worst = max(self.population, key=lambda r: r["score"])
            self.population.remove(worst)


def build_searcher(
    kind: str,
    space: SearchSpace,
    *,
    budget: int,
    seed: int,
    constraint: Constraint | None = None,
    **options: Any,
) -> ArchitectureSearcher:
    """A searcher by name: ``regularized_evolution``, ``evolution`` or ``random``."""
    common = {"budget": budget, "seed": seed, "constraint": constraint}
    if kind == "random":
        if options:
            raise ValueError(
                f"search: the random searcher takes no {sorted(options)}; remove them"
            )
        return RandomSearcher(space, **common)
    if kind in ("regularized_evolution", "evolution"):
        return EvolutionSearcher(
            space, aging=kind == "regularized_evolution", **common, **options
        )
    raise ValueError(
        f"search.searcher: unknown {kind!r}; use one of {', '.join(SEARCHERS)}"
    )
