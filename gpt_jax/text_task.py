"""The lecture's task: predict the next character of a text, from the characters before it.
The GPT and the models before it (bigram, n-gram, MLP) all train on it.

What a task gives the trainer (pairs_task.py gives the same for source → target pairs):
the model, its example inputs, the data kept on the devices, each step's inputs drawn from
(seed, step), how a step turns them into a batch, its loss, the evaluation, and a sample.
Legend: D devices, K steps per call, A micro-batches, B rows, T block_size, N eval batches.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gpt_jax import memory
from gpt_jax.dataset import TRAIN, VAL, Corpus, eval_stream, get_batch, load_text, read_windows
from gpt_jax.errors import UserError
from gpt_jax.layout import BatchLayout
from gpt_jax.models import build_model
from gpt_jax.resume import fingerprint
from gpt_jax.run_files import VOCAB
from gpt_jax.steps import AXIS, make_loss_fn, mean_loss, shard
from gpt_jax.token_files import (
    TRAIN_FILE,
    VAL_FILE,
    DataDirLock,
    in_vocabulary,
    is_prepared_dir,
    open_prepared,
)
from gpt_jax.user_files import user_path

_LOCKS: list[DataDirLock] = []  # the prepared folders this process reads


class TextTask:
    def __init__(self, config: ml_collections.ConfigDict, corpus: Corpus, text: str = "",
                 prepared: bool = False):
        self.config, self.corpus, self.text = config, corpus, text
        self.block_size = config.model.block_size
        self.prepared = prepared  # tokens memory-mapped from `python -m gpt_jax.prepare`
        # The train stream lives on every device when its int32 copy fits the budget; else
        # each chunk's windows are read from the memory map on the host and sent with it.
        self.on_device = (4 * len(corpus.train) <= config.data.on_device_budget_mb * 2**20
                          and len(corpus.train) < 2**31)  # its windows' int32 start offsets
        self.fingerprint: str | None = None  # of the data, whatever its vocabulary (resume.py)

    @classmethod
    def load(cls, config: ml_collections.ConfigDict) -> TextTask:
        """The text of data.path (tiny Shakespeare if empty) split 90/10, or a folder that
        `python -m gpt_jax.prepare` wrote (read through memory maps, locked while in use)."""
        path = user_path(config.data.path) if config.data.path else None
        if path is not None and is_prepared_dir(path):
            open_prepared(path)  # a folder prepare did not write is refused before its lock
            _LOCKS.append(DataDirLock(path, exclusive=False))  # held until the process ends
            data = open_prepared(path)  # again under the lock: no prepare is rewriting it
            corpus = Corpus(data.tokenizer, data.train, data.val)
            corpus.check_block_size(config.model.block_size)
            task = cls(config, corpus, prepared=True)
            outputs = data.meta.get("outputs") or {}  # the token files' sha256, from prepare
            task.fingerprint = fingerprint([outputs.get(TRAIN_FILE), outputs.get(VAL_FILE)])
            return task
        text = load_text(config.data.path)
        corpus = Corpus.from_text(text)
        corpus.check_block_size(config.model.block_size)
        task = cls(config, corpus, text)
        task.fingerprint = fingerprint(text)
        return task

    @property
    def vocab(self):
        return self.corpus.tokenizer

    @property
    def vocab_size(self) -> int:
        return self.corpus.tokenizer.vocab_size

    def with_vocab(self, stored) -> TextTask:
        """The same text in the vocabulary a resumed run was trained with, which it must fit
        (its ids are the rows of the embedding table)."""
        if stored.to_json() == self.vocab.to_json():
            return self
        if not hasattr(stored, "encode"):  # a PairVocab: the run is an encoder–decoder's
            raise UserError(f"the workdir's {VOCAB} holds the vocabulary of source → target "
                            f"pairs, not of a text: this config ({self.config.data.task} task) "
                            f"cannot resume it; use the run's own config, or a new --workdir")
        if self.prepared or not hasattr(stored, "chars"):
            data = self.config.data.path or "tiny Shakespeare (the shipped corpus)"
            raise UserError(f"{data} is tokenized with another vocabulary "
                            f"({self.vocab.kind}, {self.vocab_size:,} symbols) than this run "
                            f"was trained with ({stored.kind}, {stored.vocab_size:,}): use "
                            f"the run's data, or a new --workdir")
        try:
            task = TextTask(self.config, Corpus.from_text(self.text, stored), self.text)
        except UserError as e:
            raise UserError(f"the data does not fit the vocabulary this run was trained "
                            f"with: {e}") from None
        task.fingerprint = self.fingerprint  # the same text: resume.check_data compares it
        return task

    def build_model(self) -> nn.Module:
        return build_model(self.config.model, self.vocab_size)

    def example_inputs(self) -> tuple[jax.ShapeDtypeStruct, ...]:
        return (jax.ShapeDtypeStruct((1, self.block_size), jnp.int32),)

    def vocab_json(self) -> str:
        return self.vocab.to_json()

    @property
    def tokens_per_step(self) -> int:
        return self.config.train.batch_size * self.block_size

    def device_data(self) -> np.ndarray:
        """The train token stream, kept on every device when it fits the budget: a step
        gathers its windows there. Otherwise a placeholder: the windows come with each chunk."""
        if not self.on_device:
            return np.zeros((1,), np.int32)
        return self._in_vocabulary(np.asarray(self.corpus.train, np.int32), TRAIN)

    def _in_vocabulary(self, tokens: np.ndarray, split: int) -> np.ndarray:
        """`tokens`, read from `split`, once checked by `in_vocabulary`."""
        return in_vocabulary(tokens, self.vocab_size, self.corpus.split(split)) \
            if self.prepared else tokens

    def chunk_inputs(self, layout: BatchLayout, step: int, n: int, k: int) -> jax.Array:
        """Steps step .. step+n-1 (padded to k), on the devices: their start offsets, or, for
        a stream kept on the host, their windows of block_size + 1 tokens (this process's
        rows only, read from the memory map)."""
        t = self.config.train
        starts_DxKxAxB = layout.chunk_starts(len(self.corpus.train), self.block_size, t.seed,
                                             step, n, k)
        if self.on_device:  # a stream kept on the device is shorter than 2^31 tokens
            return shard(starts_DxKxAxB.astype(np.int32))
        windows = read_windows(self.corpus.train, starts_DxKxAxB, self.block_size + 1)
        return shard(self._in_vocabulary(windows.astype(np.int32), TRAIN))

    def batch(self, tokens_N: jax.Array, inputs_AxB: jax.Array):
        """Inputs and next-token targets of one step: the windows at its start offsets."""
        if self.on_device:
            window_AxBxT1 = tokens_N[inputs_AxB[..., None] + jnp.arange(self.block_size + 1)]
        else:
            window_AxBxT1 = inputs_AxB
        return window_AxBxT1[..., :-1], window_AxBxT1[..., 1:]

    def loss_fn(self, model: nn.Module):
        """loss(params, (x_BxT, y_BxT), keys_B=None)."""
        loss = make_loss_fn(model)
        return lambda params, batch, keys_B=None: loss(params, *batch, keys_B)

    def eval_data(self, layout: BatchLayout) -> dict:
        """The same eval_iters batches of each split at every evaluation, so the curves compare
        like with like."""
        t = self.config.train
        data = {}
        for name, split in (("train", TRAIN), ("val", VAL)):
            batches = [get_batch(self.corpus.split(split), self.block_size, t.batch_size,
                                 t.seed, eval_stream(split), i, layout.rows)
                       for i in range(t.eval_iters)]
            x, y = (self._in_vocabulary(np.stack(a).astype(np.int32), split)
                    for a in zip(*batches, strict=True))
            data[name] = (shard(layout.for_eval(x)), shard(layout.for_eval(y)))
        return data

    def evaluator(self, model: nn.Module):
        """(params, eval_data) -> {'train_loss', 'val_loss'} on every device, dropout off."""
        mean = mean_loss(make_loss_fn(model))

        def evaluate(params, data):
            return {f"{split}_loss": jax.lax.pmean(mean(params, *data[split]), AXIS)
                    for split in ("train", "val")}
        return jax.pmap(evaluate, axis_name=AXIS)

    def sample(self, model: nn.Module, params, max_new_tokens: int) -> str:
        """A short sample from the current params, starting from a newline."""
        from gpt_jax.generation import sample_texts

        return sample_texts(model, params, self.vocab, self.block_size,
                            max_new_tokens=max_new_tokens)[0]

    def memory_parts(self, layout: BatchLayout) -> dict[str, tuple[int, str]]:
        return memory.training_bytes(self.config, self.vocab_size, layout.micro_batch,
                                     layout.per_process // layout.local_devices,
                                     len(self.corpus.train) if self.on_device else 0,
                                     windows_on_host=not self.on_device)
