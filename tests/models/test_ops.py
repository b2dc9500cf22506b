"""Each operator against an independent reference computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from recnas.models import ops

torch.manual_seed(0)
B, E = 3, 16


def _rand(*shape):
    return torch.randn(*shape, dtype=torch.float64)


def _norm(n):
    return {"ln_w": _rand(n), "ln_b": _rand(n)}


def test_dot_product_token_counts():
    expected = {16: 6, 32: 8, 64: 11, 128: 16, 256: 23, 512: 32, 768: 39, 1024: 45}
    for width, tokens in expected.items():
        assert ops.dot_tokens(width) == round(math.sqrt(2 * width)) == tokens
        assert ops.pairs(tokens) == (tokens + 1) * tokens // 2


def test_fc_with_and_without_layernorm():
    x = _rand(B, 10)
    p = {"w": _rand(7, 10), "b": _rand(7)}
    torch.testing.assert_close(ops.fc(p, x), torch.relu(x @ p["w"].T + p["b"]))
    p = {"w": _rand(7, 10)} | _norm(7)
    y = x @ p["w"].T
    y = (y - y.mean(1, keepdim=True)) / torch.sqrt(
        y.var(1, unbiased=False, keepdim=True) + 1e-5
    )
    torch.testing.assert_close(ops.fc(p, x), torch.relu(y * p["ln_w"] + p["ln_b"]))


def test_efc_mixes_tokens_shared_across_channels():
    x = _rand(B, 5, E)
    p = {"w": _rand(4, 5), "b": _rand(4)}
    expected = torch.relu(
        torch.einsum("sn,bne->bse", p["w"], x) + p["b"][None, :, None]
    )
    torch.testing.assert_close(ops.efc(p, x), expected)


def test_sum_and_gating_pad_to_one_width():
    left, right = _rand(B, 3), _rand(B, 5)
    lp = F.pad(left, (0, 2))
    p = {"w": _rand(4, 5), "b": _rand(4)}
    torch.testing.assert_close(
        ops.sum_op(p, left, right), (lp + right) @ p["w"].T + p["b"]
    )
    torch.testing.assert_close(ops.sum_op({}, left, right), lp + right)
    g = {"gate_w": _rand(5, 5), "gate_b": _rand(5)}
    gate = torch.sigmoid(lp @ g["gate_w"].T + g["gate_b"])
    torch.testing.assert_close(ops.sigmoid_gating(g, left, right), gate * right)
    torch.testing.assert_close(
        ops.sigmoid_gating(g | p, left, right), (gate * right) @ p["w"].T + p["b"]
    )


def test_dot_product_strict_lower_triangle():
    width, t = 32, ops.dot_tokens(32)
    dense, sparse = _rand(B, 20), _rand(B, 9, E)
    p = {
        "dense_w": _rand(E, 20),
        "dense_b": _rand(E),
        "tok_w": _rand(t, 9),
        "tok_b": _rand(t),
        "w": _rand(width, ops.pairs(t)),
        "b": _rand(width),
    }
    x = dense @ p["dense_w"].T + p["dense_b"]
    y = torch.einsum("tn,bne->bte", p["tok_w"], sparse) + p["tok_b"][None, :, None]
    tokens = torch.cat([x[:, None], y], 1)
    inter = torch.stack(
        [
            (tokens[:, i] * tokens[:, j]).sum(-1)
            for i in range(1, t + 1)
            for j in range(i)
        ],
        dim=1,
    )
    assert inter.shape == (B, 36)
    torch.testing.assert_close(
        ops.dot_product(p, dense, sparse), inter @ p["w"].T + p["b"]
    )


def test_attention_matches_torch_multihead_attention():
    x = _rand(B, 7, E).float()
    s = 5
    p = {
        "tok_w": torch.randn(s, 7),
        "tok_b": torch.randn(s),
        "in_w": torch.randn(3 * E, E),
        "in_b": torch.randn(3 * E),
        "out_w": torch.randn(E, E),
        "out_b": torch.randn(E),
        "ln1_w": torch.randn(E),
        "ln1_b": torch.randn(E),
        "ff1_w": torch.randn(E, E),
        "ff1_b": torch.randn(E),
        "ff2_w": torch.randn(E, E),
        "ff2_b": torch.randn(E),
        "ln2_w": torch.randn(E),
        "ln2_b": torch.randn(E),
    }
    mha = nn.MultiheadAttention(E, 8, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(p["in_w"])
        mha.in_proj_bias.copy_(p["in_b"])
        mha.out_proj.weight.copy_(p["out_w"])
        mha.out_proj.bias.copy_(p["out_b"])
    h = torch.einsum("sn,bne->bse", p["tok_w"], x) + p["tok_b"][None, :, None]
    a = F.layer_norm(
        h + mha(h, h, h, need_weights=False)[0], (E,), p["ln1_w"], p["ln1_b"]
    )
    f = F.linear(
        torch.relu(F.linear(a, p["ff1_w"], p["ff1_b"])), p["ff2_w"], p["ff2_b"]
    )
    expected = F.layer_norm(a + f, (E,), p["ln2_w"], p["ln2_b"])
    torch.testing.assert_close(ops.attention(p, x), expected, atol=1e-5, rtol=1e-5)


def test_mergers_and_head():
    dense = _rand(B, 40)
    p = {"w": _rand(8 * E, 40), "b": _rand(8 * E)}
    tokens = ops.to_sparse(p, dense, E)
    assert tokens.shape == (B, 8, E)
    torch.testing.assert_close(tokens[:, 1], (dense @ p["w"].T + p["b"])[:, E : 2 * E])
    sparse = _rand(B, 6, E)
    pairwise = sum(
        sparse[:, i] * sparse[:, j] for i in range(6) for j in range(i + 1, 6)
    )
    torch.testing.assert_close(ops.to_dense({}, sparse), 2 * pairwise)
    q = {"w": _rand(1, 40 + 6 * E), "b": _rand(1)}
    expected = torch.cat([dense, sparse.flatten(1)], 1) @ q["w"].T + q["b"]
    torch.testing.assert_close(ops.head(q, dense, sparse), expected[:, 0])


@pytest.mark.parametrize("layernorm", [False, True])
def test_declared_parameters_follow_nasrec(layernorm):
    sizes = {"E": 16, "3E": 48, "8E": 128, "1": 1, "d": 128, "s": 32, "t": 16}
    sizes |= {"pairs": 136, "D": 128, "dense_in": 16, "tokens_in": 16}

    def held(op):
        return {n for n, p in ops.PARAMS[op].items() if ops.holds(p, sizes, layernorm)}

    norm = {"ln_w", "ln_b"} if layernorm else set()
    bias = set() if layernorm else {"b"}
    assert held("fc") == {"w"} | bias | norm
    # E-wide dense input, t input tokens: no input projections; d = 128 = 8E.
    assert held("dot_product") == {"w"} | bias | norm
    assert held("to_sparse") == set()
    assert held("sum") == norm  # D == d: no projection
    assert held("sigmoid_gating") == {"gate_w", "gate_b"} | norm
    assert {"ln1_w", "ln2_w", "in_w"} <= held("attention")
