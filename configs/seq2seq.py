"""The encoder–decoder on its shipped task: dates in many spellings → ISO dates.

"Friday, 7 April 2023", "the 7th of April, 2023", "07.04.2023" ... → "2023-04-07": the
target reorders and translates the source, so the decoder must read it through
cross-attention. 40,000 training pairs; 2,000 held-out dates that no training pair has.
`configs/seq2seq.py:gpt` is the decoder-only GPT on the same pairs, as one sequence
"source<BOS>target" taught on its target only, at a similar parameter count.
"""

from gpt_jax.config import base_config
from gpt_jax.errors import UserError


def get_config(variant: str = ""):
    config = base_config()
    config.description = "encoder–decoder: dates in many spellings → ISO dates"
    config.reference_val_loss = 0.01  # no lecture figure: a loss near 0 is a perfect copy
    d, m, t = config.data, config.model, config.train
    d.task, d.max_source_len, d.max_target_len = "pairs", 32, 10
    # The lengths as references: an override of data.max_*_len carries over to block_size.
    S, T = d.get_ref("max_source_len"), d.get_ref("max_target_len")
    m.name, m.block_size = "encoder_decoder", T + 1
    m.n_layer, m.n_head, m.n_embd = 2, 4, 64
    m.activation, m.tie_embeddings = "gelu", True
    m.fused_decode = True  # translating: all heads per product (models/fused_heads.py)
    t.batch_size, t.num_steps = 64, 1500
    t.learning_rate, t.min_learning_rate = 3e-3, 1e-4
    t.lr_schedule, t.warmup_steps = "cosine", 100
    t.weight_decay, t.beta2 = 0.1, 0.99
    t.eval_interval, t.eval_iters, t.checkpoint_every = 250, 20, 500
    if variant == "gpt":
        config.description = "decoder-only GPT on the same pairs: source<BOS>target"
        m.name, m.block_size, m.n_layer = "gpt", S + T + 1, 5
        m.fused_decode = False  # the GPT's default (fused_heads.py: slower at batch 1)
    elif variant:
        raise UserError(f"unknown variant {variant!r} of seq2seq.py; choose gpt")
    return config
