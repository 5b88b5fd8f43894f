"""The ladder's steps in order, each adding one idea to the one before: their names and config
files, named here once for configs/lecture.py and `python -m gpt_jax.ladder`."""

# The steps that configs/lecture.py builds, as `--config=configs/lecture.py:STEP`.
LECTURE = ("head", "multihead", "ffwd", "residual", "layernorm")

# (name, config spec under configs/): the ladder, from a bigram table to the CPU-sized GPT.
STEPS = [("bigram", "bigram.py"), *((step, f"lecture.py:{step}") for step in LECTURE),
         ("gpt_cpu", "shakespeare_char_cpu.py")]
FULL_STEP = ("gpt", "shakespeare_char.py")  # the scaled-up GPT: an accelerator's job

# The encoder–decoder against the decoder-only GPT on the same source → target pairs.
SEQ2SEQ_STEPS = [("encoder_decoder", "seq2seq.py"), ("gpt_on_pairs", "seq2seq.py:gpt")]

# Past the lecture: the changes the fastest public GPT recipes use, one rung each on top of
# the CPU GPT, each keeping the ones before (`configs/modern.py:RUNG`).
MODERN = ("rope", "rmsnorm", "qk_norm", "relu2", "swiglu", "no_bias", "zero_init", "untied",
          "softcap", "muon")
MODERN_STEPS = [(rung, f"modern.py:{rung}") for rung in MODERN]
MODERN_SEEDS = (1337, 1)  # one val figure is noisy: each rung's is the mean over these
