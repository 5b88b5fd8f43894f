"""The modern GPT, one change at a time: `--config=configs/modern.py:RUNG` is the CPU GPT
(configs/shakespeare_char_cpu.py) with every change up to RUNG, in the order of
gpt_jax/ladder_steps.py's MODERN (the changes: gpt_jax/modern_changes.py), each on the same
budget (2,000 steps, batch 12, block 64). `python -m gpt_jax.ladder --modern` trains them and
reports what each bought.
"""

from pathlib import Path

from gpt_jax import modern_changes
from gpt_jax.config import load_config_file
from gpt_jax.errors import UserError
from gpt_jax.ladder_steps import MODERN


def get_config(rung: str = MODERN[-1]):
    if rung not in MODERN:
        raise UserError(f"unknown modern rung {rung!r}; choose one of {', '.join(MODERN)}")
    config = load_config_file(str(Path(__file__).with_name("shakespeare_char_cpu.py")))
    modern_changes.apply(config, MODERN[: MODERN.index(rung) + 1])
    config.description = "+ " + modern_changes.CHANGES[rung][0]
    config.reference_val_loss = 0.0  # past the lecture: no figure of its to stand beside
    return config
