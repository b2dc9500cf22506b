"""Search spaces and the architecture encoding: specs, sampling, mutation."""

from recnas.space.arch import Architecture, Block
from recnas.space.sampling import mutate, mutation_schedule, sample
from recnas.space.spec import SearchSpace, load_space

__all__ = [
    "Architecture",
    "Block",
    "SearchSpace",
    "load_space",
    "mutate",
    "mutation_schedule",
    "sample",
]
