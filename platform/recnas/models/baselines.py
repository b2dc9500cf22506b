"""The deep CTR baselines that searched architectures must beat.

Every model reads a :class:`~recnas.data.features.Batch` and returns one logit
per example: ``forward(batch) -> [B]`` float32. They share the same input
layer: one E-wide embedding per sparse feature (multi-valued features are
mean-pooled over their present ids), and the dense features as they come.

    dense [B, F_d] -----------------------------+
    sparse ids --> embeddings [B, F_s, E] ------+--> model-specific part --> [B]

Build one by name with :func:`build_baseline`; :data:`BASELINES` lists them.

Example:
    >>> from recnas.data.features import Batch, FeatureSet
    >>> fs = FeatureSet.synthetic(3, [10, 20, 30], multi=1)
    >>> model = build_baseline("dlrm", fs, embed_dim=8)
    >>> model(Batch.random(fs, 4)).shape
    torch.Size([4])
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import nn

from recnas.data.features import MISSING_ID, Batch, FeatureSet


class Embeddings(nn.Module):
    """One embedding per sparse feature, in the order of ``FeatureSet.sparse``.

    Single-valued features share one concatenated table (one lookup for all);
    each multi-valued feature has its own table and is mean-pooled over the
    ids that are present (id 0, missing, is left out).

    Input: a Batch. Output: [B, F_s, E].
    """

    def __init__(self, features: FeatureSet, dim: int) -> None:
        super().__init__()
        sizes = [f.vocab_size for f in features.single]
        offsets = torch.tensor([0, *sizes[:-1]], dtype=torch.int64).cumsum(0)
        self.register_buffer("offsets", offsets[: len(sizes)], persistent=False)
        self.single = nn.Embedding(max(sum(sizes), 1), dim)
        self.multi = nn.ModuleList(
            nn.Embedding(f.vocab_size, dim) for f in features.multi
        )
        # Position of each feature of FeatureSet.sparse among [singles, multis].
        single_pos = iter(range(len(sizes)))
        multi_pos = iter(range(len(sizes), features.num_sparse))
        order = [
            next(multi_pos) if f.multi_valued else next(single_pos)
            for f in features.sparse
        ]
        self.order = None if order == sorted(order) else order
        self.dim = dim
        self.num = features.num_sparse
        for table in [self.single, *self.multi]:
            nn.init.normal_(table.weight, std=0.01)

    def forward(self, batch: Batch) -> torch.Tensor:
        tokens = (
            [self.single(batch.sparse + self.offsets)] if self.offsets.numel() else []
        )
        for table, ids in zip(self.multi, batch.multi, strict=True):
            present = (ids != MISSING_ID).unsqueeze(-1).to(table.weight.dtype)
            pooled = (table(ids) * present).sum(1) / present.sum(1).clamp(min=1.0)
            tokens.append(pooled.unsqueeze(1))
        out = (
            torch.cat(tokens, dim=1)
            if tokens
            else batch.dense.new_zeros(len(batch), 0, self.dim)
        )
        return out if self.order is None else out[:, self.order]


def mlp(in_dim: int, hidden: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear -> ReLU (-> Dropout) layers; [B, in_dim] -> [B, hidden[-1]]."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        in_dim = width
    return nn.Sequential(*layers)


def mlp_width(in_dim: int, hidden: Sequence[int]) -> int:
    """The output width of ``mlp(in_dim, hidden)``."""
    return hidden[-1] if hidden else in_dim


class Tower(nn.Module):
    """An MLP and a one-unit output layer: [B, in_dim] -> [B]."""

    def __init__(
        self, in_dim: int, hidden: Sequence[int], dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.mlp = mlp(in_dim, hidden, dropout)
        self.out = nn.Linear(mlp_width(in_dim, hidden), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.mlp(x)).squeeze(1)


def fm_interaction(tokens: torch.Tensor) -> torch.Tensor:
    """Second-order factorization-machine term: [B, F, E] -> [B]."""
    square_of_sum = tokens.sum(1).pow(2)
    sum_of_square = tokens.pow(2).sum(1)
    return 0.5 * (square_of_sum - sum_of_square).sum(1)


class Linear(nn.Module):
    """First-order term (logistic regression): dense weights plus a scalar per id.

    Input: a Batch. Output: [B].
    """

    def __init__(self, features: FeatureSet) -> None:
        super().__init__()
        self.weights = Embeddings(features, 1)
        self.dense = nn.Linear(features.num_dense, 1) if features.num_dense else None
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, batch: Batch) -> torch.Tensor:
        out = self.weights(batch).sum((1, 2)) + self.bias
        if self.dense is not None:
            out = out + self.dense(batch.dense).squeeze(1)
        return out


class _Tokens(nn.Module):
    """Sparse embeddings plus the dense features projected to one more token.

    Input: a Batch. Output: [B, F_s + 1, E] (F_s when there are no dense).
    """

    def __init__(self, features: FeatureSet, dim: int) -> None:
        super().__init__()
        self.embeddings = Embeddings(features, dim)
        self.dense = nn.Linear(features.num_dense, dim) if features.num_dense else None
        self.num = features.num_sparse + (1 if self.dense is not None else 0)
        self.dim = dim

    def forward(self, batch: Batch) -> torch.Tensor:
        tokens = self.embeddings(batch)
        if self.dense is None:
            return tokens
        return torch.cat([tokens, self.dense(batch.dense).unsqueeze(1)], dim=1)


class LR(nn.Module):
    """Logistic regression. Input: a Batch. Output: [B]."""

    def __init__(self, features: FeatureSet) -> None:
        super().__init__()
        self.linear = Linear(features)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.linear(batch)


class FM(nn.Module):
    """Factorization machine (Rendle 2010). Input: a Batch. Output: [B]."""

    def __init__(self, features: FeatureSet, embed_dim: int = 16) -> None:
        super().__init__()
        self.linear = Linear(features)
        self.tokens = _Tokens(features, embed_dim)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.linear(batch) + fm_interaction(self.tokens(batch))


class FlatInput(nn.Module):
    """The embeddings flattened, then the dense features.

    Input: a Batch. Output: [B, dim] with ``dim = F_s * E + F_d``.
    """

    def __init__(self, features: FeatureSet, embed_dim: int) -> None:
        super().__init__()
        self.embeddings = Embeddings(features, embed_dim)
        self.dim = features.num_sparse * embed_dim + features.num_dense

    def forward(self, batch: Batch) -> torch.Tensor:
        return torch.cat([self.embeddings(batch).flatten(1), batch.dense], dim=1)


class DNN(nn.Module):
    """An MLP over the flattened embeddings and the dense features.

    Input: a Batch. Output: [B].
    """

    def __init__(
        self,
        features: FeatureSet,
        embed_dim: int = 16,
        hidden: Sequence[int] = (512, 256),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input = FlatInput(features, embed_dim)
        self.deep = Tower(self.input.dim, hidden, dropout)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.deep(self.input(batch))


class WideDeep(nn.Module):
    """Wide & Deep (Cheng et al. 2016): LR plus a DNN. Input: a Batch. Output: [B]."""

    def __init__(
        self,
        features: FeatureSet,
        embed_dim: int = 16,
        hidden: Sequence[int] = (512, 256),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.wide = Linear(features)
        self.deep = DNN(features, embed_dim, hidden, dropout)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.wide(batch) + self.deep(batch)


class DeepFM(nn.Module):
    """DeepFM (Guo et al. 2017): linear + FM + MLP over shared embeddings.

    Input: a Batch. Output: [B].
    """

    def __init__(
        self,
        features: FeatureSet,
        embed_dim: int = 16,
        hidden: Sequence[int] = (512, 256),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.linear = Linear(features)
        self.tokens = _Tokens(features, embed_dim)
        in_dim = self.tokens.num * embed_dim
        self.deep = Tower(in_dim, hidden, dropout)

    def forward(self, batch: Batch) -> torch.Tensor:
        tokens = self.tokens(batch)
        deep = self.deep(tokens.flatten(1))
        return self.linear(batch) + fm_interaction(tokens) + deep


class CIN(nn.Module):
    """Compressed interaction network of xDeepFM.

    Input: [B, F, E]. Output: [B, sum(layers)] (each layer sum-pooled over E).
    """

    def __init__(self, num_fields: int, layers: Sequence[int]) -> None:
        super().__init__()
        sizes = [num_fields, *layers]
        self.convs = nn.ModuleList(
            nn.Conv1d(num_fields * sizes[i], sizes[i + 1], kernel_size=1)
            for i in range(len(layers))
        )
        self.out_dim = sum(layers)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        batch, fields, dim = x0.shape
        pooled, x = [], x0
        for conv in self.convs:
            outer = torch.einsum("bhe,bme->bhme", x0, x).reshape(batch, -1, dim)
            x = torch.relu(conv(outer))
            pooled.append(x.sum(2))
        return torch.cat(pooled, dim=1)


class XDeepFM(nn.Module):
    """xDeepFM (Lian et al. 2018): linear + CIN + MLP. Input: a Batch. Output: [B]."""

    def __init__(
        self,
        features: FeatureSet,
        embed_dim: int = 16,
        cin_layers: Sequence[int] = (64, 64),
        hidden: Sequence[int] = (512, 256),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.linear = Linear(features)
        self.tokens = _Tokens(features, embed_dim)
        self.cin = CIN(self.tokens.num, cin_layers)
        self.cin_out = nn.Linear(self.cin.out_dim, 1)
        in_dim = self.tokens.num * embed_dim
        self.deep = Tower(in_dim, hidden, dropout)

    def forward(self, batch: Batch) -> torch.Tensor:
        tokens = self.tokens(batch)
        cin = self.cin_out(self.cin(tokens)).squeeze(1)
        deep = self.deep(tokens.flatten(1))
        return self.linear(batch) + cin + deep


class DCN(nn.Module):
    """Deep & Cross Network (Wang et al. 2017), cross layers
    ``x_{l+1} = x0 (x_l * w_l) + b_l + x_l`` beside an MLP.

    Input: a Batch. Output: [B].
    """

    def __init__(
        self,
        features: FeatureSet,
        embed_dim: int = 16,
        cross_layers: int = 3,
        hidden: Sequence[int] = (512, 256),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input = FlatInput(features, embed_dim)
        in_dim = self.input.dim
        self.mlp = mlp(in_dim, hidden, dropout)
        self.w = nn.ParameterList(
            nn.Parameter(torch.randn(in_dim) * in_dim**-0.5)
            for _ in range(cross_layers)
        )
        self.b = nn.ParameterList(
            nn.Parameter(torch.zeros(in_dim)) for _ in range(cross_layers)
        )
        self.out = nn.Linear(in_dim + mlp_width(in_dim, hidden), 1)

    def forward(self, batch: Batch) -> torch.Tensor:
        x0 = self.input(batch)
        x = x0
        for w, b in zip(self.w, self.b, strict=True):
            x = x0 * (x @ w).unsqueeze(1) + b + x
        deep = self.mlp(x0)
        return self.out(torch.cat([x, deep], dim=1)).squeeze(1)


class DCNv2(nn.Module):
    """DCN-v2 (Wang et al. 2021), cross layers ``x_{l+1} = x0 * (W_l x_l + b_l)
    + x_l`` with full-rank W (or rank r: ``U (V^T x)``) beside an MLP.

    Input: a Batch. Output: [B].
    """

    def __init__(
        self,
        features: FeatureSet,
        embed_dim: int = 16,
        cross_layers: int = 3,
        rank: int | None = None,
        hidden: Sequence[int] = (512, 256),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input = FlatInput(features, embed_dim)
        in_dim = self.input.dim
        self.mlp = mlp(in_dim, hidden, dropout)

        def cross() -> nn.Module:
            if rank is None:
                return nn.Linear(in_dim, in_dim)
            return nn.Sequential(
                nn.Linear(in_dim, rank, bias=False), nn.Linear(rank, in_dim)
            )

        self.cross = nn.ModuleList(cross() for _ in range(cross_layers))
        self.out = nn.Linear(in_dim + mlp_width(in_dim, hidden), 1)

    def forward(self, batch: Batch) -> torch.Tensor:
        x0 = self.input(batch)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        deep = self.mlp(x0)
        return self.out(torch.cat([x, deep], dim=1)).squeeze(1)


class AutoIntPlus(nn.Module):
    """AutoInt+ (Song et al. 2019): multi-head self-attention over the feature
    tokens with residual connections, beside an MLP.

    Input: a Batch. Output: [B].
    """

    def __init__(
        self,
        features: FeatureSet,
        embed_dim: int = 16,
        attention_layers: int = 3,
        heads: int = 2,
        hidden: Sequence[int] = (512, 256),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if embed_dim % heads:
            raise ValueError(
                f"autoint_plus: embed_dim {embed_dim} must be a multiple of "
                f"heads {heads}"
            )
        self.tokens = _Tokens(features, embed_dim)
        self.attention = nn.ModuleList(
            nn.MultiheadAttention(embed_dim, heads, batch_first=True)
            for _ in range(attention_layers)
        )
        self.residual = nn.ModuleList(
            nn.Linear(embed_dim, embed_dim, bias=False) for _ in range(attention_layers)
        )
        in_dim = self.tokens.num * embed_dim
        self.attention_out = nn.Linear(in_dim, 1)
        self.deep = Tower(in_dim, hidden, dropout)

    def forward(self, batch: Batch) -> torch.Tensor:
        tokens = self.tokens(batch)
        x = tokens
        for attention, residual in zip(self.attention, self.residual, strict=True):
            attended, _ = attention(x, x, x, need_weights=False)
            x = torch.relu(attended + residual(x))
        interacted = self.attention_out(x.flatten(1)).squeeze(1)
        deep = self.deep(tokens.flatten(1))
        return interacted + deep


class DLRM(nn.Module):
    """DLRM (Naumov et al. 2019): a bottom MLP turns the dense features into
    one E-wide token; the pairwise dot products of all tokens (strictly lower
    triangle) and that token feed a top MLP.

    Input: a Batch. Output: [B].
    """

    def __init__(
        self,
        features: FeatureSet,
        embed_dim: int = 16,
        bottom: Sequence[int] = (512, 256),
        top: Sequence[int] = (512, 256),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.embeddings = Embeddings(features, embed_dim)
        self.bottom = mlp(features.num_dense, [*bottom, embed_dim])
        num_tokens = features.num_sparse + 1
        rows, cols = torch.tril_indices(num_tokens, num_tokens, offset=-1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        in_dim = embed_dim + len(rows)
        self.top = Tower(in_dim, top, dropout)

    def forward(self, batch: Batch) -> torch.Tensor:
        dense = self.bottom(batch.dense)
        tokens = torch.cat([dense.unsqueeze(1), self.embeddings(batch)], dim=1)
        dots = torch.bmm(tokens, tokens.transpose(1, 2))[:, self.rows, self.cols]
        return self.top(torch.cat([dense, dots], dim=1))


BASELINES: dict[str, type[nn.Module]] = {
    "lr": LR,
    "fm": FM,
    "dnn": DNN,
    "wide_deep": WideDeep,
    "deepfm": DeepFM,
    "xdeepfm": XDeepFM,
    "dcn": DCN,
    "dcn_v2": DCNv2,
    "autoint_plus": AutoIntPlus,
    "dlrm": DLRM,
}


def build_baseline(name: str, features: FeatureSet, **params: object) -> nn.Module:
    """A deep baseline by name.

    Args:
        name: One of :data:`BASELINES`.
        features: The dataset's features.
        **params: Constructor arguments, e.g. ``embed_dim=16``,
            ``hidden=[512, 256]``.

    Raises:
        ValueError: On an unknown name or parameter.
    """
    if name not in BASELINES:
        raise ValueError(
            f"model.name: unknown baseline {name!r}; choose one of {sorted(BASELINES)}"
        )
    accepted = baseline_params(name)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ValueError(
            f"model.params: baseline {name!r} takes no {unknown}; "
            f"it takes {sorted(accepted)}"
        )
    return BASELINES[name](features, **params)


def baseline_params(name: str) -> set[str]:
    """The hyperparameters a baseline's constructor takes."""
    init = BASELINES[name].__init__
    return set(inspect.signature(init).parameters) - {"self", "features"}
