"""The encoder–decoder Transformer (Vaswani et al. 2017), the lecture's last idea made runnable.

An encoder block attends without the triangular mask: every source token may look at every
other. A decoder block attends causally over the target so far, then cross-attends: its
queries come from the target, its keys and values from the encoder's output. Both are the
same `Head` math with other sources of keys and values and other masks; the source's padding
is masked out of every attention that reads it.

Legend: B batch, S source time, T target time, C channels, V vocab.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from gpt_jax.models.attention import MultiHeadAttention
from gpt_jax.models.feedforward import FeedForward
from gpt_jax.models.init import dense_init, embed_init


@dataclasses.dataclass(frozen=True)
class EncoderDecoderConfig:
    """The `model` section's fields an encoder–decoder reads, plus the data's lengths."""

    vocab_size: int
    source_len: int  # S: the longest source, data.max_source_len
    block_size: int  # T: the decoder's positions, data.max_target_len + 1 (EOS)
    n_embd: int = 128
    n_head: int = 4
    n_layer: int = 2  # encoder blocks, and as many decoder blocks
    ffn_mult: int = 4
    activation: str = "relu"
    dropout: float = 0.0
    fused_dropout: bool = False
    fused_decode: bool = False  # decoding by models/fused_heads.py (same math, faster)
    init: str = "gpt2"
    compute_dtype: str = "float32"
    shared_embeddings: bool = True  # one character table for source, target and LM head
    projections: bool = True  # read by MultiHeadAttention and FeedForward
    query_chunk: int = 0  # read by Head; not used here
    # Read by Head, MultiHeadAttention and FeedForward: their GPTConfig defaults, today's
    # encoder–decoder (its positions are its own learned tables).
    pos_emb: str = "learned"
    rope_base: float = 10000.0
    qk_norm: bool = False
    bias: bool = True
    zero_init_proj: bool = False

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head


def layer_norm(cfg: EncoderDecoderConfig, name: str) -> nn.LayerNorm:
    """LayerNorm, its β only with `bias` (as the GPT's: models/block.py)."""
    return nn.LayerNorm(use_bias=cfg.bias, name=name)


class EncoderBlock(nn.Module):
    """x + self-attention(LN(x)) over the whole source, padding masked; then x + ffwd(LN(x))."""

    config: EncoderDecoderConfig

    @nn.compact
    def __call__(self, x_BxSxC: jax.Array, source_mask_BxS: jax.Array,
                 deterministic: bool = True) -> jax.Array:
        cfg = self.config
        attention = MultiHeadAttention(cfg, causal=False, deterministic=deterministic, name="sa")
        x_BxSxC = x_BxSxC + attention(layer_norm(cfg, "ln1")(x_BxSxC),
                                      kv_mask_BxS=source_mask_BxS)
        ffwd = FeedForward(cfg, deterministic=deterministic, name="ffwd")
        return x_BxSxC + ffwd(layer_norm(cfg, "ln2")(x_BxSxC))


class DecoderBlock(nn.Module):
    """x + causal self-attention(LN(x)); x + cross-attention(LN(x), encoder output);
    x + ffwd(LN(x))."""

    config: EncoderDecoderConfig

    @nn.compact
    def __call__(self, x_BxTxC: jax.Array, memory_BxSxC: jax.Array,
                 source_mask_BxS: jax.Array, start: jax.Array | int = 0,
                 deterministic: bool = True, decode: bool = False) -> jax.Array:
        cfg = self.config
        self_attention = MultiHeadAttention(cfg, causal=True, deterministic=deterministic,
                                            decode=decode, name="sa")
        cross_attention = MultiHeadAttention(cfg, causal=False, deterministic=deterministic,
                                             decode=decode, name="cross")
        x_BxTxC = x_BxTxC + self_attention(layer_norm(cfg, "ln1")(x_BxTxC), start=start)
        x_BxTxC = x_BxTxC + cross_attention(layer_norm(cfg, "ln2")(x_BxTxC), memory_BxSxC,
                                            source_mask_BxS, start=start)
        ffwd = FeedForward(cfg, deterministic=deterministic, name="ffwd")
        return x_BxTxC + ffwd(layer_norm(cfg, "ln3")(x_BxTxC))


class EncoderDecoder(nn.Module):
    """Encodes a source once; decodes a target one token after another, reading the source
    through cross-attention. Returns the decoder's next-token logits_BxTxV."""

    config: EncoderDecoderConfig

    def setup(self):
        cfg = self.config
        embed = lambda n, name: nn.Embed(n, cfg.n_embd, embedding_init=embed_init(cfg.init),
                                         name=name)
        self.source_embedding = embed(cfg.vocab_size, "source_embedding")
        self.target_embedding = self.source_embedding if cfg.shared_embeddings else embed(
            cfg.vocab_size, "target_embedding")
        self.source_positions = embed(cfg.source_len, "source_positions")
        self.target_positions = embed(cfg.block_size, "target_positions")
        self.encoder_blocks = [EncoderBlock(cfg, name=f"encoder_{i}") for i in range(cfg.n_layer)]
        self.decoder_blocks = [DecoderBlock(cfg, name=f"decoder_{i}") for i in range(cfg.n_layer)]
        self.encoder_norm = layer_norm(cfg, "ln_encoder")
        self.decoder_norm = layer_norm(cfg, "ln_decoder")
        if not cfg.shared_embeddings:
            self.lm_head = nn.Dense(cfg.vocab_size, use_bias=cfg.bias,
                                    kernel_init=dense_init(cfg.init), name="lm_head")

    def __call__(self, source_BxS: jax.Array, target_in_BxT: jax.Array, *,
                 train: bool = False) -> jax.Array:
        """Teacher forcing: the logits of every target position at once."""
        source_mask_BxS = source_BxS != 0  # PAD = 0 (pairs.PairVocab)
        memory_BxSxC = self.encode(source_BxS, train=train)
        return self.decode(target_in_BxT, memory_BxSxC, source_mask_BxS, train=train)

    def encode(self, source_BxS: jax.Array, *, train: bool = False) -> jax.Array:
        """The source's representation, every token having seen every other."""
        S = source_BxS.shape[1]
        source_mask_BxS = source_BxS != 0
        x_BxSxC = self.source_embedding(source_BxS) + self.source_positions(jnp.arange(S))[None]
        x_BxSxC = self.perturb("source_embeddings", x_BxSxC)  # no-op: tests' gradients
        for block in self.encoder_blocks:
            x_BxSxC = block(x_BxSxC, source_mask_BxS, deterministic=not train)
        return self.encoder_norm(x_BxSxC)

    def decode(self, target_in_BxT: jax.Array, memory_BxSxC: jax.Array,
               source_mask_BxS: jax.Array, *, train: bool = False, decode: bool = False,
               start: jax.Array | int = 0) -> jax.Array:
        """Next-token logits of the target tokens given, reading the encoded source. With
        `decode` the self-attention keeps a cache, so tokens can be fed one at a time from
        position `start`."""
        T = target_in_BxT.shape[1]
        x_BxTxC = self.target_embedding(target_in_BxT) + self.target_positions(
            start + jnp.arange(T))[None]
        x_BxTxC = self.perturb("target_embeddings", x_BxTxC)  # no-op: tests' gradients
        for block in self.decoder_blocks:
            x_BxTxC = block(x_BxTxC, memory_BxSxC, source_mask_BxS, start,
                            deterministic=not train, decode=decode)
        x_BxTxC = self.decoder_norm(x_BxTxC)
        if self.config.shared_embeddings:
            return self.target_embedding.attend(x_BxTxC)
        return self.lm_head(x_BxTxC)
