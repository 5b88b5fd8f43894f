"""A GPT sized for a laptop CPU: 4 layers, 4 heads, 128 wide, block 64, batch 12, 2000 steps.

Reference val loss ≈ 1.88 at step 2000 (nanoGPT's CPU settings for shakespeare_char). Ours
reaches ≈ 1.76 with one change, a learning rate of 3e-3 instead of 1e-3: nanoGPT's rate is
tuned for its 384-wide model, and Adam's best rate scales about as 1/width (μP):
1e-3 · 384/128. `--config.train.learning_rate=1e-3` gives nanoGPT's training settings; the
model differs from its in two details: biases in every Linear and LayerNorm (nanoGPT's
`bias=False`; 808,320 parameters here) and GELU's tanh approximation (flax's default;
nanoGPT's `nn.GELU()` is exact). Its evaluation averages 50 batches, nanoGPT's CPU recipe 20.

`:short` trains the same model for 1,200 steps with the cosine ending there (a run that stops
early should have decayed its rate by then), at a higher peak rate and a shorter warmup: the
best rate grows as the horizon shrinks. The sweeps behind both are in benchmarks/README.md.

`:modern` is the same model and budget with the modern changes that the ladder measured to help
(gpt_jax/modern_changes.py KEPT: RoPE, QK-norm, SwiGLU, zero-initialized projections, a
logit soft-cap, Muon; RMSNorm, no biases and an untied head did not lower the loss beyond the
seeds' spread);
`:modern_short` trains it for 300 steps, the cosine ending there, for
benchmarks/time_to_loss.py. `:modern_fast` is the recipe that reaches a val loss of 1.88
soonest on a CPU: half the depth (2 layers), 400 steps, no warmup, AdamW's rate 6e-3, 4
Newton–Schulz iterations. Early in training a small model learns faster per second than a deep
one (the compute-optimal model grows with the budget), so at this budget depth costs more time
than it saves steps; a warmup spends steps of a short run at a low rate; a run this short
gains from a higher rate for the embeddings and gains (Muon's stays); and Muon's fifth
iteration costs 6% of a step for no loss that the seeds' spread shows. Measured over several
seeds in benchmarks/README.md.
"""

from gpt_jax import modern_changes
from gpt_jax.config import base_config
from gpt_jax.errors import UserError


def get_config(variant: str = ""):
    config = base_config()
    config.description = "a GPT sized for a CPU: 4 layers, 4 heads, 128 wide, block 64"
    config.reference_val_loss = 1.88
    m, t = config.model, config.train
    m.block_size, m.n_layer, m.n_head, m.n_embd = 64, 4, 4, 128
    m.activation, m.tie_embeddings, m.dropout = "gelu", True, 0.0
    t.batch_size, t.num_steps = 12, 2000
    t.learning_rate, t.min_learning_rate = 3e-3, 1e-4
    t.lr_schedule, t.warmup_steps = "cosine", 100
    t.weight_decay, t.beta2 = 0.1, 0.99
    t.eval_interval, t.eval_iters, t.checkpoint_every = 250, 50, 500
    if variant == "short":
        t.num_steps, t.learning_rate, t.warmup_steps = 1200, 4e-3, 50
    elif variant in ("modern", "modern_short", "modern_fast"):
        modern_changes.apply(config)
        config.description = "the CPU GPT with the modern changes that helped"
        if variant == "modern_short":
            t.num_steps, t.warmup_steps, t.eval_interval = 300, 30, 50
        elif variant == "modern_fast":
            config.description = "the modern CPU GPT at half the depth, to reach 1.88 soonest"
            m.n_layer = 2
            t.num_steps, t.warmup_steps, t.eval_interval = 400, 0, 50
            t.learning_rate, t.muon_ns_steps = 6e-3, 4
    elif variant:
        raise UserError(f"unknown variant {variant!r} of shakespeare_char_cpu.py; choose short, "
                        "modern, modern_short or modern_fast")
    return config
