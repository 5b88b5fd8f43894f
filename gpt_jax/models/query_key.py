"""The query and the key of attention, named in one place for both ways of computing heads.

A query (or a key) is a projection of the input, RMS-normalized when `qk_norm` is on. The
Heads (attention.py) and the fused heads of decoding (fused_heads.py) read the same
parameters, so they must create them under the same names; this mixin holds those names. Each
class brings `linear(name)` and `qk_norm(name, x)` in its own layout: (B, T, D) for a Head,
(B, T, H, D) for all heads at once.
"""

import jax


class QueryKey:
    """`query` and `key` of a module that defines `linear` and `qk_norm`."""

    def query(self, x_BxTxC: jax.Array) -> jax.Array:
        return self.qk_norm("query_norm", self.linear("query")(x_BxTxC))

    def key(self, x_BxSxC: jax.Array) -> jax.Array:
        return self.qk_norm("key_norm", self.linear("key")(x_BxSxC))
