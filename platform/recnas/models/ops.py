"""The NASRec operators, written once for the supernet and the subnet.

Every operator is a pure function of a parameter mapping ``p`` and its
inputs. The standalone subnet passes its own exact-size parameters; the
supernet passes slices of its shared weights. Which parameters an operator
has, and the axes of each, are declared in :data:`PARAMS`; the same table
sizes the subnet's tensors and lays out the supernet's shared ones, so the
two always agree.

B = batch, E = embedding dim, d = dense width, s = tokens, N = input tokens,
t = round(sqrt(2d)) (Dot-Product tokens), D = max(left width, right width).

| operator        | inputs                     | output    |
| --------------- | -------------------------- | --------- |
| fc              | dense [B, W]               | [B, d]    |
| dot_product     | dense [B, W], sparse [B, N, E] | [B, d] |
| sigmoid_gating  | left [B, Wl], right [B, Wr] | [B, d]   |
| sum             | left [B, Wl], right [B, Wr] | [B, d]   |
| efc             | sparse [B, N, E]           | [B, s, E] |
| attention       | sparse [B, N, E]           | [B, s, E] |
| to_sparse       | dense [B, d]               | [B, 8, E] |
| to_dense (FM)   | sparse [B, s, E]           | [B, d]    |
| head            | dense [B, d], sparse [B, n, E] | [B]   |

A LayerNorm follows a projection only where the parameter mapping holds its
``*_ln_w`` / ``*_ln_b`` pair (the LayerNorm switch); attention's two
residual LayerNorms are part of the operator and always present.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from recnas.space.spec import ATTENTION_HEADS, MERGER_TOKENS

Params = Mapping[str, torch.Tensor]

# Initial weight of attention's residual LayerNorms (NASRec's choice).
ATTENTION_LN_INIT = 0.17


def dot_tokens(width: int) -> int:
    """t, the tokens Dot-Product projects its sparse input to: round(sqrt(2d))."""
    return int(math.floor(math.sqrt(2 * width) + 0.5))


def pairs(tokens: int) -> int:
    """Strictly-lower-triangle entries of a (tokens+1)-square matrix."""
    return (tokens + 1) * tokens // 2


@dataclass(frozen=True)
class Param:
    """Declaration of one operator parameter.

    Attributes:
        axes: Axis names (see :func:`axis_sizes`), one per dimension.
        init: ``linear`` (uniform +-1/sqrt(fan_in)), ``bias`` (the same bound,
            fan_in from ``fan``), ``xavier``, ``ones``, ``zeros``, ``ln_small``.
        when: Conditions, all of which must hold: ``ln`` / ``no_ln`` (the
            LayerNorm switch), ``a!=b`` (two axis sizes differ).
        fan: Axis whose size is the fan-in of a bias.
    """

    axes: tuple[str, ...]
    init: str
    when: tuple[str, ...] = ()
    fan: str = ""


def _linear(rows: str, cols: str, bias: str, when: tuple[str, ...] = ()) -> dict:
    """A projection ``cols -> rows``; its bias only without LayerNorm."""
    items = {"w": Param((rows, cols), "linear", when)}
    if bias == "no_ln":
        items["b"] = Param((rows,), "bias", (*when, "no_ln"), fan=cols)
    elif bias == "always":
        items["b"] = Param((rows,), "bias", when, fan=cols)
    return items


def _norm(axis: str, when: tuple[str, ...] = ()) -> dict:
    return {
        "ln_w": Param((axis,), "ones", (*when, "ln")),
        "ln_b": Param((axis,), "zeros", (*when, "ln")),
    }


def _prefixed(prefix: str, items: dict) -> dict:
    return {f"{prefix}_{k}": v for k, v in items.items()}


def _declarations() -> dict[str, dict[str, Param]]:
    dot = {}
    dot |= _prefixed("dense", _linear("E", "dense_in", "no_ln", ("dense_in!=E",)))
    dot |= _prefixed("dense", _norm("E", ("dense_in!=E",)))
    dot |= _prefixed("tok", _linear("t", "tokens_in", "no_ln", ("tokens_in!=t",)))
    dot |= _prefixed("tok", _norm("t", ("tokens_in!=t",)))
    dot |= _linear("d", "pairs", "no_ln", ("pairs!=d",)) | _norm("d")

    attention = _prefixed("tok", _linear("s", "tokens_in", "no_ln"))
    attention |= _prefixed("tok", _norm("s"))
    attention |= {
        "in_w": Param(("3E", "E"), "xavier"),
        "in_b": Param(("3E",), "zeros"),
        "out_w": Param(("E", "E"), "linear"),
        "out_b": Param(("E",), "zeros"),
        "ln1_w": Param(("E",), "ln_small"),
        "ln1_b": Param(("E",), "zeros"),
        "ff1_w": Param(("E", "E"), "linear"),
        "ff1_b": Param(("E",), "bias", fan="E"),
        "ff2_w": Param(("E", "E"), "linear"),
        "ff2_b": Param(("E",), "bias", fan="E"),
        "ln2_w": Param(("E",), "ln_small"),
        "ln2_b": Param(("E",), "zeros"),
    }
    gating = {
        "gate_w": Param(("D", "D"), "linear"),
        "gate_b": Param(("D",), "bias", fan="D"),
    }
    gating |= _linear("d", "D", "always", ("D!=d",)) | _norm("d")
    return {
        "fc": _linear("d", "dense_in", "no_ln") | _norm("d"),
        "dot_product": dot,
        "sigmoid_gating": gating,
        "sum": _linear("d", "D", "no_ln", ("D!=d",)) | _norm("d"),
        "efc": _linear("s", "tokens_in", "no_ln") | _norm("s"),
        "attention": attention,
        "to_sparse": _linear("8E", "d", "no_ln", ("d!=8E",)) | _norm("8E", ("d!=8E",)),
        "to_dense": _linear("d", "E", "no_ln", ("d!=E",)) | _norm("d", ("d!=E",)),
        "head": {
            "w": Param(("1", "head_in"), "linear"),
            "b": Param(("1",), "bias", fan="head_in"),
        },
    }


#: Parameters of every operator (and of the mergers and the head).
PARAMS: dict[str, dict[str, Param]] = _declarations()


def holds(param: Param, sizes: Mapping[str, int], layernorm: bool) -> bool:
    """Whether an operator with these axis sizes has ``param``."""
    for cond in param.when:
        if cond == "ln":
            ok = layernorm
        elif cond == "no_ln":
            ok = not layernorm
        else:
            a, b = cond.split("!=")
            ok = sizes[a] != sizes[b]
        if not ok:
            return False
    return True


# Kernels.


def _norm_if(x: torch.Tensor, p: Params, prefix: str = "") -> torch.Tensor:
    key = f"{prefix}ln_w"
    if key in p:
        return F.layer_norm(x, (x.shape[-1],), p[key], p[f"{prefix}ln_b"])
    return x


def _project(x: torch.Tensor, p: Params, prefix: str = "") -> torch.Tensor:
    """Linear (if the mapping holds its weight), then LayerNorm (if it holds one)."""
    weight = p.get(f"{prefix}w")
    if weight is not None:
        x = F.linear(x, weight, p.get(f"{prefix}b"))
    return _norm_if(x, p, prefix)


def _token_project(x: torch.Tensor, p: Params, prefix: str) -> torch.Tensor:
    """Projects [B, N, E] along the token axis to [B, n, E] (n = weight rows)."""
    if f"{prefix}w" not in p:
        return x
    y = _project(x.transpose(1, 2), p, prefix)
    return y.transpose(1, 2)


def fc(p: Params, dense: torch.Tensor) -> torch.Tensor:
    """FC: Linear -> (LayerNorm) -> ReLU. [B, W] -> [B, d]."""
    return torch.relu(_project(dense, p))


def efc(p: Params, sparse: torch.Tensor) -> torch.Tensor:
    """EFC: Linear along tokens (shared over E) -> (LayerNorm) -> ReLU.

    [B, N, E] -> [B, s, E].
    """
    y = torch.relu(_project(sparse.transpose(1, 2), p))
    return y.transpose(1, 2)


def _pad_pair(left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, ...]:
    width = max(left.shape[1], right.shape[1])
    return (
        F.pad(left, (0, width - left.shape[1])),
        F.pad(right, (0, width - right.shape[1])),
    )


def sum_op(p: Params, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Sum: zero-pad to one width D, add, project to d if D != d. [B, d]."""
    left, right = _pad_pair(left, right)
    return _project(left + right, p)


def sigmoid_gating(p: Params, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Sigmoid Gating: sigmoid(Linear_DxD(left)) * right, projected to d. [B, d]."""
    left, right = _pad_pair(left, right)
    gate = torch.sigmoid(F.linear(left, p["gate_w"], p["gate_b"]))
    return _project(gate * right, p)


@functools.lru_cache(maxsize=256)
def _tril(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = torch.tril_indices(n, n, offset=-1, device=device)
    return rows, cols


def dot_product(p: Params, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
    """Dot-Product: pairwise dot products of one dense token and t sparse tokens.

    The dense input is projected to one E-wide token (unless it is E wide),
    the sparse tokens to t = round(sqrt(2d)) tokens along the token axis
    (unless there are t); the strictly-lower triangle of the (t+1)^2 products
    ((t+1)t/2 values) is projected to d. [B, W], [B, N, E] -> [B, d].
    """
    x = _project(dense, p, "dense_")
    y = _token_project(sparse, p, "tok_")
    tokens = torch.cat([x.unsqueeze(1), y], dim=1)
    products = torch.bmm(tokens, tokens.transpose(1, 2))
    rows, cols = _tril(tokens.shape[1], tokens.device)
    return _project(products[:, rows, cols], p)


def attention(p: Params, sparse: torch.Tensor) -> torch.Tensor:
    """Attention: project tokens to s, 8-head self-attention over E, residual +
    LayerNorm, feed-forward E->E->E, residual + LayerNorm. [B, N, E] -> [B, s, E].
    """
    x = _token_project(sparse, p, "tok_")
    batch, tokens, dim = x.shape
    q, k, v = F.linear(x, p["in_w"], p["in_b"]).chunk(3, dim=-1)

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(batch, tokens, ATTENTION_HEADS, -1).transpose(1, 2)

    attended = F.scaled_dot_product_attention(heads(q), heads(k), heads(v))
    attended = attended.transpose(1, 2).reshape(batch, tokens, dim)
    x = x + F.linear(attended, p["out_w"], p["out_b"])
    x = F.layer_norm(x, (dim,), p["ln1_w"], p["ln1_b"])
    hidden = torch.relu(F.linear(x, p["ff1_w"], p["ff1_b"]))
    x = x + F.linear(hidden, p["ff2_w"], p["ff2_b"])
    return F.layer_norm(x, (dim,), p["ln2_w"], p["ln2_b"])


def to_sparse(p: Params, dense: torch.Tensor, embedding_dim: int) -> torch.Tensor:
    """Dense->sparse merger: project [B, d] to 8 tokens [B, 8, E]."""
    y = _project(dense, p)
    return y.reshape(dense.shape[0], MERGER_TOKENS, embedding_dim)


def to_dense(p: Params, sparse: torch.Tensor) -> torch.Tensor:
    """Sparse->dense merger: factorization machine (sum x)^2 - sum x^2 over
    tokens, projected to d. [B, s, E] -> [B, d]."""
    total = sparse.sum(dim=1)
    interactions = total * total - (sparse * sparse).sum(dim=1)
    return _project(interactions, p)


def head(p: Params, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
    """Head: Linear(concat(dense, flattened sparse)) -> one logit. [B]."""
    features = torch.cat([dense, sparse.flatten(1)], dim=1)
    return F.linear(features, p["w"], p["b"]).squeeze(1)


DENSE_KERNELS = {"fc": fc, "dot_product": dot_product}
BINARY_KERNELS = {"sigmoid_gating": sigmoid_gating, "sum": sum_op}
SPARSE_KERNELS = {"efc": efc, "attention": attention}


def init_param(tensor: torch.Tensor, param: Param, fan_in: int) -> None:
    """Initializes one (exact or shared) parameter tensor in place."""
    with torch.no_grad():
        if param.init in ("linear", "bias"):
            bound = 1.0 / math.sqrt(max(fan_in, 1))
            tensor.uniform_(-bound, bound)
        elif param.init == "xavier":
            torch.nn.init.xavier_uniform_(tensor)
        elif param.init == "ones":
            tensor.fill_(1.0)
        elif param.init == "zeros":
            tensor.zero_()
        elif param.init == "ln_small":
            tensor.fill_(ATTENTION_LN_INIT)
        else:
            raise AssertionError(f"unknown init {param.init}")
