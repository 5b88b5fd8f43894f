"""A GPT sized for a laptop CPU: 4 layers, 4 heads, 128 wide, block 64, batch 12, 2000 steps.

Reference val loss ≈ 1.88 at step 2000 (nanoGPT's CPU settings for shakespeare_char).
"""

from gpt_jax.config import base_config


def get_config():
    config = base_config()
    config.description = "a GPT sized for a CPU (nanoGPT's shakespeare_char CPU settings)"
    config.reference_val_loss = 1.88
    m, t = config.model, config.train
    m.block_size, m.n_layer, m.n_head, m.n_embd = 64, 4, 4, 128
    m.activation, m.tie_embeddings, m.dropout = "gelu", True, 0.0
    t.batch_size, t.num_steps = 12, 2000
    t.learning_rate, t.min_learning_rate = 1e-3, 1e-4
    t.lr_schedule, t.warmup_steps = "cosine", 100
    t.weight_decay, t.beta2 = 0.1, 0.99
    t.eval_interval, t.eval_iters, t.checkpoint_every = 250, 50, 500
    config.lock()
    return config
