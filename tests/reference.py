"""Independent references in NumPy (float64): the lecture's formulas written out from the
notes, never from gpt_jax's code, so that a test comparing the two can catch a bug that both
sides of a model-vs-model comparison would share.

Legend: B batch, T time, C channels, H heads, D head size, V vocab.
"""

from __future__ import annotations

import math

import numpy as np

LN_EPS = 1e-6  # flax.linen.LayerNorm's default epsilon


def layer_norm(x, scale, bias, eps: float = LN_EPS):
    """(x − E[x]) / sqrt(Var[x] + ε) · γ + β over the channels, as in the notes."""
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * scale + bias


def rms_norm(x, scale, eps: float = LN_EPS):
    """x / sqrt(E[x²] + ε) · γ: LayerNorm without the mean and without β."""
    return x / np.sqrt((x**2).mean(-1, keepdims=True) + eps) * scale


def rope(x_BxTxD, positions_T, base: float = 10000.0):
    """Rotary embedding: channels i and i + D/2 as a point in the plane, turned by the angle
    position · base^(−2i/D)."""
    D = x_BxTxD.shape[-1]
    theta_D2 = base ** (-np.arange(0, D, 2) / D)
    angle_TxD2 = np.asarray(positions_T, np.float64)[:, None] * theta_D2
    cos, sin = np.cos(angle_TxD2), np.sin(angle_TxD2)
    a, b = x_BxTxD[..., : D // 2], x_BxTxD[..., D // 2 :]
    return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)


def softcap(logits, cap: float):
    """cap · tanh(logits / cap); cap 0 is no cap."""
    return cap * np.tanh(logits / cap) if cap > 0 else logits


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def gelu(x):
    """GELU's tanh approximation (flax.linen.gelu's default, GPT-2's)."""
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def silu(x):
    return x / (1 + np.exp(-x))


ACTIVATIONS = {"relu": lambda x: np.maximum(x, 0), "gelu": gelu, "tanh": np.tanh,
               "relu2": lambda x: np.maximum(x, 0) ** 2}


def head(x_BxTxC, Wq_CxD, Wk_CxD, Wv_CxD, causal: bool = True, kv_BxSxC=None,
         q_scale_D=None, k_scale_D=None, rope_base: float | None = None):
    """One head: softmax(q·kᵀ / sqrt(D)), future masked to −inf when causal, times v. Given
    gains, q and k are RMS-normalized first (QK-norm); given a RoPE base, then rotated by their
    positions 0, 1, ..."""
    source = x_BxTxC if kv_BxSxC is None else kv_BxSxC
    q, k, v = x_BxTxC @ Wq_CxD, source @ Wk_CxD, source @ Wv_CxD
    if q_scale_D is not None:
        q, k = rms_norm(q, q_scale_D), rms_norm(k, k_scale_D)
    if rope_base is not None:
        q, k = rope(q, np.arange(q.shape[1]), rope_base), rope(k, np.arange(k.shape[1]), rope_base)
    wei_BxTxS = q @ k.transpose(0, 2, 1) / math.sqrt(Wq_CxD.shape[-1])
    if causal:
        T, S = wei_BxTxS.shape[1:]
        wei_BxTxS = np.where(np.tril(np.ones((T, S), bool)), wei_BxTxS, -np.inf)
    return softmax(wei_BxTxS) @ v


def multi_head(x, heads, m, proj=None):
    """The heads side by side (head h from its (C, H, D) kernels' column h, and with QK-norm
    from its (D, H) gains' column h), concatenated in head order, then the projection back
    to C. Each switch is read from the config `m`, and the parameters must match it."""
    H = heads["query"]["kernel"].shape[1]
    assert ("query_norm" in heads) == ("key_norm" in heads) == bool(m.qk_norm)
    rope_base = m.rope_base if m.pos_emb == "rope" else None

    def one(h):
        W = (heads[n]["kernel"][:, h] for n in ("query", "key", "value"))
        scales = {}
        if m.qk_norm:
            scales = dict(q_scale_D=heads["query_norm"]["scale"][:, h],
                          k_scale_D=heads["key_norm"]["scale"][:, h])
        return head(x, *W, rope_base=rope_base, **scales)

    out = np.concatenate([one(h) for h in range(H)], axis=-1)
    return out if proj is None else linear(out, proj, m.bias)


def linear(x, p, bias: bool):
    """x·W + b; a layer without bias (model.bias=False) has no b."""
    assert ("bias" in p) == bias
    return x @ p["kernel"] + (p["bias"] if bias else 0.0)


def feed_forward(x, p, m):
    """act(x·W1 + b1)·W2 + b2, W1 of ffn_mult·C columns; SwiGLU: (silu(x·Wgate) ⊙ x·W1)·W2,
    of round(2/3·ffn_mult·C) columns (the plain MLP's parameter count)."""
    C = x.shape[-1]
    width = round(2 * m.ffn_mult * C / 3) if m.activation == "swiglu" else m.ffn_mult * C
    assert p["fc"]["kernel"].shape == (C, width)
    if m.activation == "swiglu":
        h = silu(linear(x, p["gate"], m.bias)) * linear(x, p["fc"], m.bias)
    else:
        h = ACTIVATIONS[m.activation](linear(x, p["fc"], m.bias))
    return linear(h, p["proj"], m.bias) if m.projections else h


def norm(x, p, m):
    """The norm a config names: LayerNorm (its β only with model.bias) or RMSNorm."""
    if m.norm == "rmsnorm":
        assert "bias" not in p
        return rms_norm(x, p["scale"])
    assert ("bias" in p) == bool(m.bias)
    return layer_norm(x, p["scale"], p["bias"] if m.bias else 0.0)


def block(x, p, m):
    """x + attention(LN(x)), then + feed-forward(LN(·)): each switch off gives the lecture's
    earlier form (no norm, no residual, no projections, no feed-forward)."""
    pre_norm = (lambda name, y: norm(y, p[name], m)) if m.layer_norm else (lambda name, y: y)
    attn = multi_head(pre_norm("ln1", x), p["sa"]["heads"], m,
                      p["sa"]["proj"] if m.projections else None)
    x = x + attn if m.residual else attn
    if m.ffwd:
        ff = feed_forward(pre_norm("ln2", x), p["ffwd"], m)
        x = x + ff if m.residual else ff
    return x


def gpt_logits(params, idx_BxT, m):
    """The whole GPT: token (+ position) embeddings, blocks, final norm, LM head, soft-cap."""
    p = {k: _f64(v) for k, v in params.items()}
    wte = p["token_embedding_table"]["embedding"]
    x = wte[idx_BxT]
    if m.pos_emb == "learned":
        x = x + p["position_embedding_table"]["embedding"][: idx_BxT.shape[1]]
    for i in range(m.n_layer):
        x = block(x, p[f"block_{i}"], m)
    if m.layer_norm:
        x = norm(x, p["ln_f"], m)
    logits = x @ wte.T if m.tie_embeddings else linear(x, p["lm_head"], m.bias)
    return softcap(logits, m.logit_softcap)


def cross_entropy(logits_BxTxV, targets_BxT) -> float:
    logp = logits_BxTxV - logits_BxTxV.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    return float(-np.take_along_axis(logp, targets_BxT[..., None], -1).mean())


def learning_rate(t: int, train) -> float:
    """The rate of update t (0-based): linear warmup from 0, then constant or a cosine from
    the peak down to min_learning_rate at num_steps (nanoGPT's get_lr)."""
    peak, warmup = train.learning_rate, train.warmup_steps
    if t < warmup:
        return peak * t / warmup
    if train.lr_schedule == "constant":
        return peak
    span = max(train.num_steps, warmup + 1) - warmup
    progress = min((t - warmup) / span, 1.0)
    return train.min_learning_rate + 0.5 * (1 + math.cos(math.pi * progress)) * (
        peak - train.min_learning_rate)


class AdamW:
    """Clip the global gradient norm, Adam's bias-corrected moments, decoupled weight decay on
    matrices (ndim >= 2) only, times the step's learning rate: Loshchilov & Hutter's AdamW as
    nanoGPT configures it."""

    EPS = 1e-8

    def __init__(self, train, params):
        self.train, self.t = train, 0
        self.m = {k: np.zeros_like(v, np.float64) for k, v in params.items()}
        self.v = {k: np.zeros_like(v, np.float64) for k, v in params.items()}

    def step(self, params: dict, grads: dict) -> dict:
        tr = self.train
        grads = {k: np.asarray(g, np.float64) for k, g in grads.items()}
        norm = math.sqrt(sum(float((g**2).sum()) for g in grads.values()))
        if tr.grad_clip > 0 and norm > tr.grad_clip:
            grads = {k: g * tr.grad_clip / norm for k, g in grads.items()}
        lr, new = learning_rate(self.t, tr), {}
        self.t += 1
        for k, g in grads.items():
            self.m[k] = tr.beta1 * self.m[k] + (1 - tr.beta1) * g
            self.v[k] = tr.beta2 * self.v[k] + (1 - tr.beta2) * g**2
            m_hat = self.m[k] / (1 - tr.beta1**self.t)
            v_hat = self.v[k] / (1 - tr.beta2**self.t)
            update = m_hat / (np.sqrt(v_hat) + self.EPS)
            if np.ndim(params[k]) >= 2:
                update = update + tr.weight_decay * params[k]
            new[k] = params[k] - lr * update
        return new


def newton_schulz(G, steps: int = 5, coeffs=(3.4445, -4.7750, 2.0315), eps: float = 1e-8):
    """Muon's orthogonalization (Jordan 2024): X = G / ‖G‖_F, turned to be wide, then five
    times X ← aX + (bA + cA²)X with A = XXᵀ. It pushes every singular value of G towards 1
    (into roughly [0.7, 1.2]: the polar factor UVᵀ of G = USVᵀ, approximately)."""
    X = G / (np.linalg.norm(G) + eps)
    tall = X.shape[0] > X.shape[1]
    X = X.T if tall else X
    a, b, c = coeffs
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if tall else X


def _f64(tree):
    if isinstance(tree, dict):
        return {k: _f64(v) for k, v in tree.items()}
    return np.asarray(tree, np.float64)
