"""The modern GPT, one change at a time: `--config=configs/modern.py:RUNG` is the CPU GPT
(configs/shakespeare_char_cpu.py) with every change up to RUNG, in the order of
gpt_jax/ladder_steps.py's MODERN, each on the same budget (2,000 steps, batch 12, block 64).
`python -m gpt_jax.ladder --modern` trains them and reports what each bought.
"""

from pathlib import Path

from gpt_jax.config import load_config_file
from gpt_jax.errors import UserError
from gpt_jax.ladder_steps import MODERN


def _set(section: str, **fields):
    def change(config):
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
    "muon": ("the Muon optimizer for the blocks' matrices", _set("train", optimizer="muon")),
}
assert tuple(CHANGES) == MODERN, "configs/modern.py and gpt_jax/ladder_steps.py disagree"


def get_config(rung: str = MODERN[-1]):
    if rung not in CHANGES:
        raise UserError(f"unknown modern rung {rung!r}; choose one of {', '.join(MODERN)}")
    config = load_config_file(str(Path(__file__).with_name("shakespeare_char_cpu.py")))
    for name in MODERN[: MODERN.index(rung) + 1]:
        CHANGES[name][1](config)
    config.description = "+ " + CHANGES[rung][0]
    return config
