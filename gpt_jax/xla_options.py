"""Who computes a program's matrix products on a CPU: the YNNPACK library, or XLA itself.

XLA:CPU hands each product, with the elementwise work fused around it, to the YNNPACK library
by default. That is the faster way for the GPT's forward and backward passes. It is the slower
way for programs made of many small products: Muon's Newton–Schulz iterations (420 products of
128-wide matrices a step on the CPU GPT) and the encoder–decoder's cached decoding (one token
a row). Those run 10–17% faster with XLA's own kernels (benchmarks/README.md, "Small products
without YNNPACK"). The choice is made per program, through its compiler options. It changes
which kernel computes each product, not what is computed: only the rounding differs (float32's
last bit, so a long run's losses move within a seed's spread). Off the CPU it changes nothing;
nor across processes, where the train step compiles at its first call (steps.compile_ahead).
"""

import jax

# The XLA debug option that lists the kinds of fusion YNNPACK takes; empty: none.
YNN_FUSIONS = "xla_cpu_experimental_ynn_fusion_type"


def compiler_options(library_products: bool) -> dict[str, str] | None:
    """For `jax.jit(..., compiler_options=)` or `Lowered.compile(compiler_options=)`: XLA's
    defaults (None), or on the CPU without `library_products` no fusion for YNNPACK."""
    if library_products or jax.default_backend() != "cpu":
        return None
    return {YNN_FUSIONS: ""}
