"""Source → target pairs (data.task = "pairs"): dates in many spellings → ISO dates, shipped
with the package, or a user's `source<TAB>target` file.

Two models learn it. The encoder–decoder reads the source with its encoder and writes the
target with its decoder, which cross-attends to the source. The decoder-only GPT reads one
sequence "source<BOS>target<EOS>" and is taught only its target part (a prefix language
model), so the two compare on the same pairs. Both are scored by the loss per target token
and by exact match: the whole target written greedily, token by token, equals the reference.
Legend: D devices, K steps per call, A micro-batches, B rows, S source, T target, L sequence.
"""

from __future__ import annotations

import os
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gpt_jax import memory
from gpt_jax.dataset import TRAIN, TRAIN_STREAM, eval_stream
from gpt_jax.errors import UserError
from gpt_jax.layout import BatchLayout
from gpt_jax.models import build_model
from gpt_jax.models.encoder_decoder import EncoderDecoder, EncoderDecoderConfig
from gpt_jax.pairs import (
    PairArrays,
    PairVocab,
    encode_pairs,
    eval_batches,
    load_pairs,
    pair_batch_indices,
)
from gpt_jax.resume import fingerprint
from gpt_jax.run_files import VOCAB
from gpt_jax.steps import AXIS, apply_model, shard
from gpt_jax.tasks import dates
from gpt_jax.translation import complete_greedily, translate
from gpt_jax.user_files import user_path

HELD_OUT_EVERY = 10  # a user's file without data.val_path: every 10th pair is held out
SAMPLES = 4  # held-out translations shown at each evaluation


def load_split(config: ml_collections.ConfigDict) -> tuple[list, list]:
    """(train, held-out) pairs: the shipped dates, a file and its val file, or one file of
    which every 10th distinct pair is held out. A held-out pair is never a training pair: a
    pair written twice in the one file is held out whole, and the pairs of a val file that
    the training file holds too are left out of it (said); each held-out pair counts once."""
    d = config.data
    lengths = (d.max_source_len, d.max_target_len)
    if not d.path:
        return (load_pairs(dates.shipped_dir() / dates.TRAIN_FILE, *lengths),
                load_pairs(dates.shipped_dir() / dates.VAL_FILE, *lengths))
    pairs = load_pairs(d.path, *lengths)
    if d.val_path:
        if user_path(d.val_path).exists() and os.path.samefile(user_path(d.path),
                                                               user_path(d.val_path)):
            raise UserError(f"data.val_path={d.val_path} is data.path itself: held-out pairs "
                            f"must be pairs the model does not train on")
        val = load_pairs(d.val_path, *lengths)
        distinct = list(dict.fromkeys(val))  # a pair written twice is scored once
        if len(distinct) < len(val):
            print(f"note: {len(val) - len(distinct)} of the {len(val)} pairs of data.val_path="
                  f"{d.val_path} repeat an earlier one: each distinct pair is scored once",
                  file=sys.stderr)
        trained = set(pairs)
        held_out = [p for p in distinct if p not in trained]
        if not held_out:
            raise UserError(f"every pair of data.val_path={d.val_path} is also in data.path="
                            f"{d.path}: held-out pairs must be pairs the model does not train on")
        if len(held_out) < len(distinct):
            print(f"warning: {len(distinct) - len(held_out)} of the {len(distinct)} distinct "
                  f"pairs of data.val_path={d.val_path} are also training pairs (in data.path): "
                  f"they are left out of the held-out scores", file=sys.stderr)
        return pairs, held_out
    distinct = list(dict.fromkeys(pairs))  # in the file's order, each pair once
    held = {p for i, p in enumerate(distinct) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1}
    held_out = [p for p in distinct if p in held]
    train = [p for p in pairs if p not in held]  # a repeated training pair stays repeated
    if not held_out or not train:
        raise UserError(f"{d.path} has {len(distinct)} distinct pairs: too few to hold out "
                        f"every {HELD_OUT_EVERY}th; pass a separate --config.data.val_path")
    return train, held_out


def prefix_sequences(arrays: PairArrays, L: int) -> tuple[np.ndarray, ...]:
    """For the decoder-only GPT: inputs "source<BOS>target", next-token targets shifted by
    one with EOS at the end, and weights that teach the target part only; each (N, L)."""
    N = len(arrays)
    x_NxL, y_NxL, w_NxL = (np.zeros((N, L), np.int32) for _ in range(3))
    for n in range(N):
        source = arrays.source_NxS[n, :arrays.source_len_N[n]]
        target = arrays.target_out_NxT[n][arrays.target_out_NxT[n] != PairVocab.PAD]
        sequence = np.concatenate([source, [PairVocab.BOS], target])  # target ends with EOS
        x_NxL[n, :len(sequence) - 1] = sequence[:-1]
        y_NxL[n, :len(sequence) - 1] = sequence[1:]
        w_NxL[n, len(source):len(sequence) - 1] = 1
    return x_NxL, y_NxL, w_NxL


def _warn_of_unseen_characters(train: list, val: list) -> None:
    """The vocabulary holds the held-out pairs' characters too, so that they can be encoded;
    one that no training pair has gets an embedding that no step trains, and the held-out
    scores measure what the model could not have learnt: said, not refused."""
    seen = {c for source, target in train for c in source + target}
    unseen = sorted({c for source, target in val for c in source + target} - seen)
    if unseen:
        shown = ", ".join(repr(c) for c in unseen[:5]) + (", ..." if len(unseen) > 5 else "")
        print(f"warning: the held-out pairs hold {len(unseen)} character(s) that no training "
              f"pair has ({shown}): their embeddings are never trained, and the held-out "
              f"scores count them", file=sys.stderr)


class PairsTask:
    def __init__(self, config: ml_collections.ConfigDict, train: list, val: list,
                 vocab: PairVocab):
        self.config, self.vocab = config, vocab
        self.train_pairs, self.val_pairs = train, val
        self.fingerprint: str | None = None  # of the pairs (resume.py)
        d = config.data
        self.S, self.T = d.max_source_len, d.max_target_len + 1
        self.encoder_decoder = config.model.name == "encoder_decoder"
        self.train = encode_pairs(train, vocab, d.max_source_len, d.max_target_len)
        self.val = encode_pairs(val, vocab, d.max_source_len, d.max_target_len)
        self.L = config.model.block_size
        self._built: dict[int, tuple] = {}  # _rows of self.train and self.val, built once

    @classmethod
    def load(cls, config: ml_collections.ConfigDict) -> PairsTask:
        train, val = load_split(config)
        _warn_of_unseen_characters(train, val)
        task = cls(config, train, val, PairVocab.from_pairs(train + val))
        task.fingerprint = fingerprint([train, val])
        return task

    @property
    def vocab_size(self) -> int:
        return self.vocab.size

    def with_vocab(self, stored: PairVocab) -> PairsTask:
        """The same pairs in the vocabulary a resumed run was trained with."""
        if stored == self.vocab:
            return self
        if not isinstance(stored, PairVocab):
            raise UserError(f"the workdir's {VOCAB} holds a text tokenizer ({stored.kind}), not "
                            f"the vocabulary of source → target pairs: this config cannot resume "
                            f"it; use the run's own config, or a new --workdir")
        try:
            task = PairsTask(self.config, self.train_pairs, self.val_pairs, stored)
        except UserError as e:
            raise UserError(f"the pairs do not fit the vocabulary this run was trained "
                            f"with: {e}") from None
        task.fingerprint = self.fingerprint  # the same pairs: resume.check_data compares it
        return task

    def build_model(self) -> nn.Module:
        return pairs_model(self.config, self.vocab_size)

    def example_inputs(self) -> tuple[jax.ShapeDtypeStruct, ...]:
        return pairs_inputs(self.config)

    @property
    def tokens_per_step(self) -> int:
        return pairs_tokens_per_step(self.config)

    def _rows(self, arrays: PairArrays):
        """The per-pair arrays a batch gathers from: (inputs..., targets, weights); built once
        for each of the task's splits (the GPT's, a Python loop over every pair, were built
        again for every chunk: 50× slower training on 400,000 pairs)."""
        if id(arrays) not in self._built:
            self._built[id(arrays)] = (arrays, self._build_rows(arrays))  # arrays kept alive
        return self._built[id(arrays)][1]

    def _build_rows(self, arrays: PairArrays):
        if self.encoder_decoder:
            out = arrays.target_out_NxT
            return (arrays.source_NxS, arrays.target_in_NxT, out,
                    (out != PairVocab.PAD).astype(np.float32))
        x, y, w = prefix_sequences(arrays, self.L)
        return x, y, w.astype(np.float32)

    def device_data(self) -> tuple[np.ndarray, ...]:
        """Every training pair's arrays, kept on every device: a step gathers its rows."""
        return self._rows(self.train)

    def chunk_inputs(self, layout: BatchLayout, step: int, n: int, k: int):
        """Steps step .. step+n-1 (padded to k): the pairs of each, and the factor that turns
        the mean over a micro-batch's target slots into the mean over the global batch's real
        target tokens (so that any layout gives the same loss)."""
        t = self.config.train
        index_KxR = np.zeros((k, layout.per_process), np.int32)
        scale_K = np.ones((k,), np.float32)
        weights = self._rows(self.train)[-1]
        for i in range(n):
            index_B = pair_batch_indices(len(self.train), t.batch_size, t.seed, TRAIN_STREAM,
                                         step + i)
            index_KxR[i] = index_B[layout.rows]
            scale_K[i] = weights[index_B].size / weights[index_B].sum()
        scale_DxK = np.broadcast_to(scale_K, (layout.local_devices, k))
        return shard(layout.for_chunk(index_KxR)), shard(np.ascontiguousarray(scale_DxK))

    def batch(self, data, inputs):
        """One step's rows: each array of `data` at the step's pair indices."""
        index_AxB, scale = inputs
        return tuple(a[index_AxB] for a in data), jnp.broadcast_to(scale, index_AxB.shape[:1])

    def loss_fn(self, model: nn.Module):
        """loss(params, (rows, scale), keys_B=None): cross-entropy on the target tokens."""
        def loss(params, batch, keys_B=None):
            (*inputs, targets, weights), scale = batch
            logits = apply_model(model, params, tuple(inputs), keys_B)
            total, _ = _token_loss(logits, targets, weights)
            return total / weights.size * scale
        return loss

    def eval_data(self, layout: BatchLayout) -> dict:
        """Fixed batches of training pairs, and every held-out pair once (padded rows masked)."""
        t = self.config.train
        train_index = np.stack([pair_batch_indices(len(self.train), t.batch_size, t.seed,
                                                   eval_stream(TRAIN), i)
                                for i in range(t.eval_iters)])
        val_index, val_mask = eval_batches(len(self.val), t.batch_size)
        data = {}
        for name, arrays, index_NxB, mask_NxB in (
                ("train", self.train, train_index, np.ones_like(train_index, bool)),
                ("val", self.val, val_index, val_mask)):
            *inputs, targets, weights = (a[index_NxB] for a in self._rows(arrays))
            weights = weights * mask_NxB[..., None]  # padding rows count nowhere
            data[name] = tuple(shard(layout.for_eval(a[:, layout.rows]))
                               for a in (*inputs, targets, weights))
        return data

    def evaluator(self, model: nn.Module):
        """(params, eval_data) -> loss per target token of both splits, and the share of
        held-out pairs whose whole target is written exactly right, greedily."""
        def scores(params, batch, exact: bool):
            *inputs, targets, weights = batch
            total, count = _token_loss(apply_model(model, params, tuple(inputs)), targets,
                                       weights)
            if not exact:
                return jnp.stack([total, count])
            written = self.write(model, params, inputs)
            real_B = weights.sum(-1) > 0  # the padding rows of the last batch count nowhere
            right_B = jnp.all((written == targets) | (weights == 0), axis=-1) & real_B
            return jnp.stack([total, count, right_B.sum(), real_B.sum()])

        def evaluate(params, data):
            out = {}
            for split in ("train", "val"):
                sums = jax.lax.map(lambda b, s=split: scores(params, b, s == "val"), data[split])
                sums = jax.lax.psum(sums.sum(0), AXIS)
                out[f"{split}_loss"] = sums[0] / sums[1]
                if split == "val":
                    out["val_exact_match"] = sums[2] / sums[3]
            return out
        return jax.pmap(evaluate, axis_name=AXIS)

    def write(self, model: nn.Module, params, inputs) -> jax.Array:
        """The target written greedily for each row, aligned with the targets of its batch."""
        if self.encoder_decoder:
            return translate(model, params, inputs[0], steps=self.T)
        x_BxL = inputs[0]
        prompt_len_B = jnp.argmax(x_BxL == PairVocab.BOS, axis=-1) + 1
        prompt_BxL = jnp.where(jnp.arange(self.L) < prompt_len_B[:, None], x_BxL, 0)
        answer_BxT = complete_greedily(model, params, prompt_BxL, prompt_len_B, steps=self.T)
        # Targets of the prefix model sit at positions prompt_len - 1 .. of y: align them.
        position_BxL = jnp.arange(self.L) - (prompt_len_B[:, None] - 1)
        return jnp.take_along_axis(answer_BxT, jnp.clip(position_BxL, 0, self.T - 1), axis=1)

    def sample(self, model: nn.Module, params, max_new_tokens: int) -> str:
        """A few held-out sources, with the targets the model writes for them."""
        sources = [source for source, _ in self.val_pairs[:SAMPLES]]
        written = translate_texts(model, params, self.config, self.vocab, sources)
        return "\n".join(f"{s} → {w}   ({t})" for s, w, (_, t) in
                         zip(sources, written, self.val_pairs, strict=False))

    def memory_parts(self, layout: BatchLayout) -> dict[str, tuple[int, str]]:
        parts = memory.training_bytes(self.config, self.vocab_size, layout.micro_batch,
                                      layout.per_process // layout.local_devices, 0)
        rows = self._rows(self.train)
        parts["the training pairs"] = (sum(a.nbytes for a in rows), "use fewer pairs")
        return parts


def pairs_tokens_per_step(config: ml_collections.ConfigDict) -> int:
    """The tokens a step of a pairs run reads, which its tokens/s counts: each row's source
    and target (its end token included) for the encoder–decoder, its window for the GPT."""
    d = config.data
    per_row = d.max_source_len + d.max_target_len + 1 \
        if config.model.name == "encoder_decoder" else config.model.block_size
    return config.train.batch_size * per_row


def pairs_model(config: ml_collections.ConfigDict, vocab_size: int) -> nn.Module:
    """The encoder–decoder, or the decoder-only GPT, for pairs of the config's lengths."""
    m, d = config.model, config.data
    if m.name != "encoder_decoder":
        return build_model(m, vocab_size)
    return EncoderDecoder(EncoderDecoderConfig(
        vocab_size=vocab_size, source_len=d.max_source_len, block_size=m.block_size,
        n_embd=m.n_embd, n_head=m.n_head, n_layer=m.n_layer, ffn_mult=m.ffn_mult,
        activation=m.activation, dropout=m.dropout, fused_dropout=m.fused_dropout, init=m.init,
        compute_dtype=m.compute_dtype, shared_embeddings=m.tie_embeddings, qk_norm=m.qk_norm,
        bias=m.bias, zero_init_proj=m.zero_init_proj, fused_decode=m.fused_decode))


def pairs_inputs(config: ml_collections.ConfigDict) -> tuple[jax.ShapeDtypeStruct, ...]:
    """One example's input shapes: (source, target) or the GPT's one sequence."""
    row = lambda n: jax.ShapeDtypeStruct((1, n), jnp.int32)
    if config.model.name == "encoder_decoder":
        return row(config.data.max_source_len), row(config.data.max_target_len + 1)
    return (row(config.model.block_size),)


def encode_source(config: ml_collections.ConfigDict, vocab: PairVocab, source: str) -> np.ndarray:
    """The ids of a source a run can translate: 1 to data.max_source_len known characters."""
    S = config.data.max_source_len
    if not source:
        raise UserError(f"the source is empty: a run trained on pairs writes the target of a "
                        f"source of 1 to data.max_source_len = {S} characters")
    if len(source) > S:
        raise UserError(f"a source must have 1 to data.max_source_len = {S} characters, "
                        f"got {len(source)}: {source!r}")
    return vocab.encode_source(source)


def translate_texts(model: nn.Module, params, config: ml_collections.ConfigDict,
                    vocab: PairVocab, sources: list[str], seed: int = 0, greedy: bool = True,
                    temperature: float = 1.0, top_k: int = 0,
                    top_p: float = 1.0, use_cache: bool = True,
                    num_samples: int = 1) -> list[str]:
    """The `num_samples` targets the model writes for each source text, source by source
    (from a run's config and vocabulary alone: no data needed); the encoder–decoder without
    its KV cache with `use_cache=False`. Sample j of every source draws from the seed's key j,
    as sample j of a text prompt does: a source samples the same alone and among others."""
    S, T, L = config.data.max_source_len, config.data.max_target_len + 1, config.model.block_size
    encoded = [encode_source(config, vocab, s) for s in sources]
    ids = [row for row in encoded for _ in range(num_samples)]
    if config.model.name == "encoder_decoder":
        source_BxS = np.zeros((len(ids), S), np.int32)
        for b, row in enumerate(ids):
            source_BxS[b, :len(row)] = row
        sample_B = np.tile(np.arange(num_samples), len(sources))
        keys_B = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.key(seed), sample_B)
        out = translate(model, params, source_BxS, keys_B, temperature, top_k, top_p, steps=T,
                        greedy=greedy, use_cache=use_cache)
    else:
        x_BxL = np.zeros((len(ids), L), np.int32)
        for b, row in enumerate(ids):
            x_BxL[b, :len(row) + 1] = [*row, PairVocab.BOS]
        out = complete_greedily(model, params, x_BxL, np.array([len(r) + 1 for r in ids]),
                                steps=T)
    # The last of the T slots is the end token's place: a target has at most T - 1 characters
    # (a sampled row that writes none there is cut, not printed longer than any target).
    return [vocab.decode(row[:T - 1]) for row in np.asarray(out)]


def _token_loss(logits_BxTxV, targets_BxT, weights_BxT):
    """(sum of the weighted per-token losses, sum of the weights), in float32."""
    per_token_BxT = optax.softmax_cross_entropy_with_integer_labels(
        logits_BxTxV.astype(jnp.float32), targets_BxT)
    return (per_token_BxT * weights_BxT).sum(), weights_BxT.sum()
