"""The input stem: embedding tables and the dense features.

Every sparse feature has its own embedding table (E columns). A single-valued
feature becomes its id's row; a multi-valued feature becomes the mean of the
rows of its non-missing ids (id 0 is missing and padding; a row with no id
gives a zero token). Tokens follow the order of ``FeatureSet.sparse``. The
dense features pass through unchanged (they are already transformed).
"""

from __future__ import annotations

import torch
from torch import nn

from recnas.data.features import MISSING_ID, Batch, FeatureSet


class FeatureStem(nn.Module):
    """Embeddings for the sparse features, the dense features as they are.

    Args:
        features: The dataset's features.
        embedding_dim: E.

    Shapes:
        forward(batch) -> (dense [B, F_dense], tokens [B, F_sparse, E]).
    """

    def __init__(self, features: FeatureSet, embedding_dim: int) -> None:
        super().__init__()
        if features.num_sparse == 0:
            raise ValueError(
                "the NASRec models need at least one sparse feature; the feature "
                "set has none"
            )
        self.features = features
        self.embedding_dim = embedding_dim
        self.tables = nn.ModuleList(
            nn.Embedding(f.vocab_size, embedding_dim) for f in features.sparse
        )
        for table in self.tables:
            nn.init.uniform_(table.weight, -0.05, 0.05)
        # Where each token's ids are: (is_multi, column or tensor index).
        single = multi = 0
        self.slots: list[tuple[bool, int]] = []
        for f in features.sparse:
            if f.multi_valued:
                self.slots.append((True, multi))
                multi += 1
            else:
                self.slots.append((False, single))
                single += 1

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = []
        for table, (is_multi, slot) in zip(self.tables, self.slots, strict=True):
            if is_multi:
                tokens.append(_mean_pool(table, batch.multi[slot]))
            else:
                tokens.append(table(batch.sparse[:, slot]))
        return batch.dense, torch.stack(tokens, dim=1)


def _mean_pool(table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    """Mean of the rows of the non-missing ids: [B, L] -> [B, E]."""
    present = (ids != MISSING_ID).unsqueeze(-1).to(table.weight.dtype)
    total = (table(ids) * present).sum(dim=1)
    return total / present.sum(dim=1).clamp(min=1.0)
