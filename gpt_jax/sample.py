"""`python -m gpt_jax.sample --workdir=DIR`: text from a trained run, restored from DIR alone."""

from __future__ import annotations

import math
import sys
import time

from absl import flags

from gpt_jax import cli
from gpt_jax.config import INT32_MAX, SEED_MAX
from gpt_jax.errors import UserError

USAGE = ("usage: python -m gpt_jax.sample --workdir=DIR [--prompt=TEXT] [--max_new_tokens=N] "
         "[--num_samples=N] [--temperature=T] [--top_k=K] [--top_p=P] [--seed=S] [--step=N]")
flags.DEFINE_string("workdir", None, "A training run's folder.")
flags.DEFINE_integer("step", None, "Checkpoint step to restore (default: the latest).")
flags.DEFINE_string("prompt", "", "Text to continue (default: a newline). Only its last "
                    "block_size characters are used.")
flags.DEFINE_integer("max_new_tokens", 500, "Characters to generate per sample.")
flags.DEFINE_integer("num_samples", 1, "Samples, generated as one batch.")
flags.DEFINE_float("temperature", 1.0, "Divides the logits: < 1 is more conservative.")
flags.DEFINE_integer("top_k", None, "Sample among the k most likely characters only.")
flags.DEFINE_float("top_p", 1.0, "Sample among the most likely characters whose mass reaches p.")
flags.DEFINE_integer("seed", 0, "Same seed, same text.")
flags.DEFINE_integer("slide", 0, "When the context fills the block, drop this many oldest "
                     "tokens and prefill again (default block_size/2; 1 = exact, slowest).")
flags.DEFINE_bool("no_cache", False, "Re-run the whole context for every token (slow; for "
                  "comparison).")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def _main(argv: list[str]) -> None:
    start = time.perf_counter()
    cli.parse_flags(argv, USAGE, "workdir")
    F = flags.FLAGS
    _check(F.workdir is not None, USAGE)
    _check(0 < F.temperature < math.inf, f"--temperature must be > 0, got {F.temperature}")
    _check(0 < F.top_p <= 1, f"--top_p must be in (0, 1], got {F.top_p}")
    _check(F.top_k is None or 1 <= F.top_k <= INT32_MAX,
           f"--top_k must be >= 1, got {F.top_k}")
    _check(1 <= F.max_new_tokens <= INT32_MAX,
           f"--max_new_tokens must be in [1, {INT32_MAX}], got {F.max_new_tokens}")
    _check(1 <= F.num_samples <= INT32_MAX,
           f"--num_samples must be in [1, {INT32_MAX}], got {F.num_samples}")
    _check(0 <= F.slide <= INT32_MAX, f"--slide must be >= 0, got {F.slide}")
    _check(0 <= F.seed <= SEED_MAX, f"--seed must be in [0, 2^63 - 1], got {F.seed}")
    _check(F.step is None or 0 <= F.step <= INT32_MAX, f"--step must be >= 0, got {F.step}")

    from gpt_jax import compilation_cache

    compilation_cache.enable()
    from gpt_jax import memory
    from gpt_jax.restore import load_run
    from gpt_jax.sampling import sample_texts

    run = load_run(F.workdir, F.step)
    run.tokenizer.encode(F.prompt)  # names an unknown character before anything compiles
    block_size = run.config.model.block_size
    _check(F.slide < block_size, f"--slide must be < block_size ({block_size})")
    memory.require_fits(
        memory.sampling_bytes(run.config.model, run.tokenizer.vocab_size, F.num_samples,
                              F.max_new_tokens),
        "sampling")
    texts = sample_texts(run.model, run.params, run.tokenizer, block_size, F.prompt,
                         F.max_new_tokens, F.num_samples, F.seed, F.temperature, F.top_k or 0,
                         F.top_p, F.slide, use_cache=not F.no_cache)
    for i, text in enumerate(texts):
        if i:
            print("\n" + "-" * 40)
        print(F.prompt + text, flush=True)
    print(f"[{F.num_samples} × {F.max_new_tokens} tokens from step {run.step} in "
          f"{time.perf_counter() - start:.1f} s, restore and compilation included]",
          file=sys.stderr)


def main() -> None:
    cli.run(lambda: _main(sys.argv))


if __name__ == "__main__":
    main()
