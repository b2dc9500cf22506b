"""Shared weights that hand out exact slices.

An :class:`ElasticTensor` is one parameter of one (block, operator) pair of
the supernet, at its largest size, stored as tiles. Each axis is a list of
segments (one per possible source, see :mod:`recnas.models.plan`); a large
segment is cut into chunks at the sizes an architecture can ask for, so a
request for the first ``d`` rows and the first ``w`` columns of a source is
an exact union of whole tiles::

    columns:   | source 0 |   source 1: 16 | 32 | 64 | ... |  source 2 ...
    rows  16   |  tile    |   tile  | tile | ...
          32   |  tile    |   tile  | ...
          ...

A training step therefore gathers, updates and keeps optimizer state only
for the tiles its architecture uses: an unused tile gets no gradient (its
``grad`` stays None and optimizers skip it). Small segments (token axes,
vectors) are single tiles that are sliced.
"""

from __future__ import annotations

import torch
from torch import nn

from recnas.models import ops

# Segments whose largest size is at least this many units are tiled.
TILE_MIN = 128

Layout = tuple[tuple[int, ...], ...]  # per segment, its chunk boundaries


def _chunks(bounds: tuple[int, ...], tiled: bool) -> list[tuple[int, int]]:
    if not tiled:
        return [(0, bounds[-1])]
    edges = (0, *bounds)
    return [(lo, hi) for lo, hi in zip(edges, edges[1:], strict=False) if hi > lo]


class ElasticTensor(nn.Module):
    """A 1-D or 2-D parameter stored as tiles over segmented axes.

    Args:
        layout: Per dimension, per segment, the sizes a request may end at
            (increasing; the last is the segment's full size).
        param: The declaration, for initialization.
        fan_in: Nominal fan-in used to initialize.
        tile_min: Segments at least this large (with several sizes) are
            tiled; smaller ones are single tiles.
    """

    def __init__(
        self,
        layout: tuple[Layout, ...],
        param: ops.Param,
        fan_in: int,
        tile_min: int = TILE_MIN,
    ) -> None:
        super().__init__()
        self.dims = len(layout)
        self.chunks = [
            [
                _chunks(b, len(b) > 1 and b[-1] >= tile_min and self.dims == 2)
                for b in axis
            ]
            for axis in layout
        ]
        self.tiles = nn.ParameterList()
        self.index: dict[tuple[int, ...], int] = {}
        for key, shape in self._tile_shapes():
            tensor = torch.empty(shape)
            ops.init_param(tensor, param, fan_in)
            self.index[key] = len(self.tiles)
            self.tiles.append(nn.Parameter(tensor))
        self._list = list(self.tiles)
        self._recipes: dict = {}

    def _tile_shapes(self):
        rows = [
            (seg, c, hi - lo)
            for seg, chunks in enumerate(self.chunks[0])
            for c, (lo, hi) in enumerate(chunks)
        ]
        if self.dims == 1:
            for seg, c, n in rows:
                yield (seg, c), (n,)
            return
        for rs, rc, rn in rows:
            for cs, chunks in enumerate(self.chunks[1]):
                for cc, (lo, hi) in enumerate(chunks):
                    yield (rs, rc, cs, cc), (rn, hi - lo)

    def _pieces(self, axis: int, parts: tuple[tuple[int, int], ...]):
        """(segment, chunk, size used of that chunk) for a request on one axis."""
        for seg, size in parts:
            for c, (lo, hi) in enumerate(self.chunks[axis][seg]):
                if lo >= size:
                    break
                yield seg, c, min(hi, size) - lo, hi - lo

    def _apply(self, fn, recurse=True):
        module = super()._apply(fn, recurse)
        self._list = list(self.tiles)  # conversions may replace the parameters
        return module

    def _recipe(self, parts: tuple[tuple[tuple[int, int], ...], ...]) -> list:
        """Which tiles make up a request, and how each is cut (None: whole)."""
        index = self.index
        if self.dims == 1:
            return [
                [(index[seg, c], used if used != full else None, None)]
                for seg, c, used, full in self._pieces(0, parts[0])
            ]
        cols = list(self._pieces(1, parts[1]))
        return [
            [
                (
                    index[rs, rc, cs, cc],
                    rused if rused != rfull else None,
                    cused if cused != cfull else None,
                )
                for cs, cc, cused, cfull in cols
            ]
            for rs, rc, rused, rfull in self._pieces(0, parts[0])
        ]

    def get(self, *parts: tuple[tuple[int, int], ...]) -> torch.Tensor:
        """The requested slice: per dimension, a tuple of (segment, size)."""
        recipe = self._recipes.get(parts)
        if recipe is None:
            shape = tuple(sum(n for _, n in p) for p in parts)
            if 0 in shape:  # a source without dense features
                return self._list[0].new_zeros(shape)
            recipe = self._recipes[parts] = self._recipe(parts)
        tiles = self._list
        if self.dims == 1:
            pieces = [_cut(tiles[i], r, c) for ((i, r, c),) in recipe]
            return pieces[0] if len(pieces) == 1 else torch.cat(pieces)
        rows = []
        for row in recipe:
            pieces = [_cut(tiles[i], r, c) for i, r, c in row]
            rows.append(pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=1))
        return rows[0] if len(rows) == 1 else torch.cat(rows, dim=0)


def _cut(tile: torch.Tensor, rows: int | None, cols: int | None) -> torch.Tensor:
    if rows is not None:
        tile = tile[:rows]
    if cols is not None:
        tile = tile[:, :cols]
    return tile
