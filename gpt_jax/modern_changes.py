"""The modern GPT's changes, each a function of a config, in the ladder's order (MODERN).

configs/modern.py:RUNG applies them up to RUNG to the CPU GPT, one rung at a time;
the `:modern` variants of configs/shakespeare_char_cpu.py and configs/shakespeare_char.py
apply the ones the ladder measured to help (KEPT).
"""

import ml_collections

from gpt_jax.ladder_steps import MODERN


def _set(section: str, **fields):
    def change(config: ml_collections.ConfigDict) -> None:
        config[section].update(fields)
    return change


# rung: (what it adds, the change). Sources: RoFormer (Su et al. 2021), RMSNorm (Zhang &
# Sennrich 2019), QK-norm (Dehghani et al. 2023), ReLU² (So et al. 2021), SwiGLU (Shazeer
# 2020), Muon (Jordan et al. 2024); the rest as in modded-nanogpt.
CHANGES = {
    "rope": ("rotary position embeddings instead of learned ones", _set("model", pos_emb="rope")),
    "rmsnorm": ("RMSNorm instead of LayerNorm", _set("model", norm="rmsnorm")),
    "qk_norm": ("queries and keys RMS-normalized before their dot product",
                _set("model", qk_norm=True)),
    "relu2": ("ReLU² in the feed-forward instead of GELU", _set("model", activation="relu2")),
    "swiglu": ("SwiGLU instead of ReLU², at the same parameter count",
               _set("model", activation="swiglu")),
    "no_bias": ("no biases in any Linear or norm", _set("model", bias=False)),
    "zero_init": ("output projections initialized to zero", _set("model", zero_init_proj=True)),
    "untied": ("an LM head of its own instead of the token embedding",
               _set("model", tie_embeddings=False)),
    "softcap": ("logits soft-capped at 30: 30·tanh(logits/30)",
                _set("model", logit_softcap=30.0)),
    # Muon's Newton–Schulz products are small: on a CPU, XLA's own kernels run them faster
    # than YNNPACK (xla_options.py); the same math, rounded by other kernels.
    "muon": ("the Muon optimizer for the blocks' matrices",
             _set("train", optimizer="muon", cpu_library_products=False)),
}
assert tuple(CHANGES) == MODERN, "gpt_jax/modern_changes.py and ladder_steps.py disagree"

# Chosen on the ladder's first measurement (benchmarks/README.md), where RMSNorm, no biases and
# the untied head raised the mean val loss over two seeds (+0.003, +0.010, +0.013) and the others
# lowered it. Measured again (2026-12-07, README's table), only RoPE, QK-norm, ReLU² and Muon
# moved it by more than the seeds' spread of about 0.02; the rest, kept or not, moved it by less
# (no biases -0.003 with an 11% slower step, zero-init +0.006, soft-cap +0.002).
KEPT = ("rope", "qk_norm", "relu2", "swiglu", "zero_init", "softcap", "muon")


def apply(config: ml_collections.ConfigDict, rungs=KEPT) -> ml_collections.ConfigDict:
    """`config` with the changes of `rungs`, in the ladder's order."""
    for name in MODERN:
        if name in rungs:
            CHANGES[name][1](config)
    return config
