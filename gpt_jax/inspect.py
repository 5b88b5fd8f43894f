"""`python -m gpt_jax.inspect --workdir=DIR --prompt=TEXT`: pictures of what a trained run has
learned, restored from its folder alone, and an index.html that shows them together.

- attention: the weights each head gives the prompt's characters, one heatmap per layer and
  head (an encoder–decoder: its encoder's, its decoder's over BOS + the target it writes
  greedily, and the cross-attention from that target to the source). They come from the
  model's own forward pass: every Head sows its softmax into the "intermediates" collection,
  which flax keeps only for a caller that asks for it, so training pays nothing;
- the character embeddings on their first two principal components;
- the bigram's table of next-character probabilities;
- the loss at each position of a validation block, over many blocks: what context buys;
- the distribution of the next character after the prompt.
Legend: B batch, L layers, H heads, T query time, S key time, V vocab, C channels, N tokens.
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the imports below, which take seconds (jax)
    from gpt_jax import first_step

    first_step.take()

import dataclasses
import html
import re
import sys
from pathlib import Path

import numpy as np
from absl import flags

from gpt_jax import cli, run_files
from gpt_jax.config import INT32_MAX
from gpt_jax.errors import UserError
from gpt_jax.user_files import flag_text, unreachable, user_path

FLAGS = flags.FlagValues()  # this command's own: importing it defines no global flag
USAGE = ("usage: python -m gpt_jax.inspect --workdir=DIR --prompt=TEXT [--out=DIR] "
         "[--step=N | --best] [--blocks=N] [--top=N]")
flags.DEFINE_string("workdir", None, "A training run's folder.", flag_values=FLAGS)
flags.DEFINE_string("prompt", None, "The text whose attention is drawn and whose next "
                    "token is predicted, at most block_size tokens (a run on pairs: "
                    "the source to translate, at most data.max_source_len).", flag_values=FLAGS)
flags.DEFINE_string("out", None, "Where the PNGs and index.html go (default: WORKDIR/inspect).",
                    flag_values=FLAGS)
flags.DEFINE_integer("step", None, "Checkpoint step to restore (default: the latest).",
                     flag_values=FLAGS)
flags.DEFINE_bool("best", False, "Restore the checkpoint saved with the lowest val loss "
                  "instead of the latest.", flag_values=FLAGS)
flags.DEFINE_integer("blocks", 0, "Validation blocks the loss at each position is averaged "
                     "over (default: as many as hold 131,072 tokens, or 33.5 million logits "
                     "where the vocabulary is larger than 256).", flag_values=FLAGS)
flags.DEFINE_integer("top", 10, "How many of the most likely next tokens to show.",
                     flag_values=FLAGS)

STRETCH = 8  # consecutive windows per stretch, in blocks: the positions of a stretch share
# all but 1/STRETCH of their characters
POSITION_TOKENS = 2**17  # --blocks=0: as many blocks as hold this many tokens,
POSITION_LOGITS = POSITION_TOKENS * 256  # or as many as this many logits (a large vocabulary:
# at 1.1 million characters, 2^17 tokens ran for more than 11 minutes)
MAX_LABELLED = 256  # a vocabulary larger than this has too many labels to draw one by one
INDEX = "index.html"
# What each kind of attention is, by the module path of its heads with the layer number
# dropped: (file, heading, causal, what to look for).
ATTENTION = {
    "block/sa": ("attention.png", "Self-attention over {sequence}", True,
                 "Each row is one {unit} of {sequence} gathering from the {unit}s before it "
                 "(the white triangle is the future, masked out): look for heads that watch "
                 "the previous {unit}, the start of the word, or the last space or newline."),
    "encoder/sa": ("attention_encoder.png", "Encoder self-attention over the source", False,
                   "Every source character may look at every other, so no triangle is masked: "
                   "look for heads that gather a whole word or number onto each of its "
                   "characters."),
    "decoder/sa": ("attention_decoder.png", "Decoder self-attention over <bos> + the written "
                   "target", True,
                   "Each character the decoder wrote looks back only at <bos> and the characters "
                   "written before it: look for heads that keep track of where in the target "
                   "they are."),
    "decoder/cross": ("attention_cross.png", "Cross-attention from the target to the source",
                      False,
                      "Row by row, where in the source the decoder reads while it writes each "
                      "next character: look for the bright cell on the source characters that "
                      "the character being written translates or copies."),
}


@dataclasses.dataclass
class Section:
    """One part of index.html: a picture and what to look for in it, or a note saying why
    there is none."""

    heading: str
    text: str
    picture: str | None = None


def inspection_model(model):
    """The run's model, computing attention by whole blocks: by query chunks it would sow one
    set of weights per chunk (query_chunk changes no parameter and no result)."""
    config = getattr(model, "config", None)
    if getattr(config, "query_chunk", 0):
        return model.clone(config=dataclasses.replace(config, query_chunk=0))
    return model


def forward_with_attention(model, params, *inputs) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The logits of one forward pass, and {module path: weights_BxHxTxS} of every
    multi-head attention in it, in the order they ran (the heads' own sown softmax)."""
    from flax import traverse_util

    logits, state = model.apply({"params": params}, *inputs, mutable=["intermediates"])
    sown = traverse_util.flatten_dict(state.get("intermediates", {}))
    return np.asarray(logits), {"/".join(path[:-2]): np.asarray(value[0])
                                for path, value in sown.items()
                                if path[-1] == "attention_weights"}


def stack_layers(weights: dict[str, np.ndarray], row: int = 0) -> dict[str, np.ndarray]:
    """{kind: weights_LxHxTxS} of batch row `row`: the layers of each kind of attention
    ('block/sa', 'encoder/sa', 'decoder/cross', ...) stacked in order."""
    kinds: dict[str, list[np.ndarray]] = {}
    for path, w_BxHxTxS in weights.items():
        kinds.setdefault(re.sub(r"_\d+", "", path), []).append(w_BxHxTxS[row])
    return {kind: np.stack(layers) for kind, layers in kinds.items()}


def default_blocks(block_size: int, vocab_size: int) -> int:
    """The windows the loss by position is averaged over when --blocks is not given: its cost
    is their tokens times the vocabulary."""
    tokens = min(POSITION_TOKENS, POSITION_LOGITS // vocab_size)
    return max(1, tokens // block_size)


def position_losses(model, params, tokens_N: np.ndarray, block_size: int, blocks: int,
                    vocab_size: int, batch: int = 64) -> tuple[np.ndarray, int]:
    """(mean_T, blocks used): the next-token loss at each position of `blocks` windows of a
    token stream. The windows start at consecutive offsets, in stretches spread evenly over
    the stream, so that every position is scored on nearly the same characters: what differs
    between positions is the context seen, not which characters were drawn. (Where stretches
    would overlap, `blocks` single windows spread evenly.)"""
    import jax
    import jax.numpy as jnp
    import optax

    from gpt_jax.token_files import in_vocabulary

    T = block_size
    room = len(tokens_N) - T  # windows of T + 1 tokens start at 0 .. room - 1
    blocks = min(blocks, room)  # each window scored once at most
    stretch = min(STRETCH * T, blocks)
    bases = np.linspace(0, room - stretch, -(-blocks // stretch)).astype(np.int64)
    starts_N = np.unique((bases[:, None] + np.arange(stretch)).ravel()[:blocks])  # last cut
    if len(starts_N) < blocks:  # stretches that overlap: as many windows, spread evenly
        starts_N = np.linspace(0, room - 1, blocks).astype(np.int64)
    n, batch = len(starts_N), min(batch, len(starts_N))

    @jax.jit
    def losses(params, window_BxT1):
        logits_BxTxV = model.apply({"params": params}, window_BxT1[:, :-1])
        return optax.softmax_cross_entropy_with_integer_labels(
            logits_BxTxV.astype(jnp.float32), window_BxT1[:, 1:])

    # A batch of windows at a time, summed as it comes: memory stays that of one batch
    # whatever --blocks asks (all the windows at once ran out of memory at ten million).
    total_T = np.zeros(T)
    for i in range(0, n, batch):
        starts_B = starts_N[i:i + batch]
        full_B = np.concatenate([starts_B, starts_N[:batch - len(starts_B)]])  # one program
        window_BxT1 = in_vocabulary(np.asarray(tokens_N)[full_B[:, None] + np.arange(T + 1)],
                                    vocab_size, tokens_N).astype(np.int32)
        total_T += np.asarray(losses(params, window_BxT1))[:len(starts_B)].sum(0)
    return total_T / n, n


def validation_tokens(config, tokenizer, workdir: Path | None = None
                      ) -> tuple[np.ndarray | None, str]:
    """The run's own validation split in its vocabulary, or None and why it is unavailable
    here (data.path: '' is tiny Shakespeare, shipped; a text file; a prepared folder; data
    changed since the run in `workdir` trained on it)."""
    from gpt_jax.resume import other_data
    from gpt_jax.text_task import TextTask

    try:
        task = TextTask.load(config).with_vocab(tokenizer)
    except UserError as e:
        return None, str(e)
    if workdir is not None and other_data(workdir, task.fingerprint):
        return None, (f"the data at {config.data.path or 'tiny Shakespeare'} is not what this "
                      f"run trained on: it changed since (its sha256 differs from the one in "
                      f"{workdir / run_files.DATA})")
    return task.corpus.val, ""


def pca_2d(x_VxC: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """The rows of x on their first two principal components, and the share of the variance
    each explains."""
    centred_VxC = x_VxC - x_VxC.mean(0)
    _, s, vt = np.linalg.svd(centred_VxC, full_matrices=False)
    points_Vx2 = np.zeros((len(x_VxC), 2))
    k = min(2, vt.shape[0])
    points_Vx2[:, :k] = centred_VxC @ vt[:k].T
    share = np.zeros(2)
    share[:k] = s[:k] ** 2 / max(float((s**2).sum()), 1e-30)
    return points_Vx2, (float(share[0]), float(share[1]))


def token_labels(tokenizer) -> list[str]:
    """The text of every id: characters, the pair vocabulary's <pad> <bos> <eos> first, or
    each BPE token's (a part of a character as its bytes)."""
    from gpt_jax.pairs import PairVocab

    if isinstance(tokenizer, PairVocab):
        return [*PairVocab.SPECIALS, *tokenizer.chars]
    if hasattr(tokenizer, "chars"):
        return list(tokenizer.chars)
    return [tokenizer.label(i) for i in range(tokenizer.vocab_size)]


def softmax(logits_V: np.ndarray) -> np.ndarray:
    z = np.exp(logits_V.astype(np.float64) - logits_V.max())
    return z / z.sum()


def short(text: str, width: int = 32) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]


class Inspection:
    """The pictures of one run and one prompt, written into `out` as they are drawn."""

    def __init__(self, run, workdir: Path, prompt: str, out: Path, blocks: int, top: int):
        self.run, self.workdir, self.prompt, self.out = run, workdir, prompt, out
        self.blocks, self.top = blocks, top
        self.model = inspection_model(run.model)
        self.labels = token_labels(run.tokenizer)
        self.sections: list[Section] = []
        self.target: str | None = None  # what a pairs model writes for the prompt
        self.sequence = "the prompt"  # what a decoder-only model's attention is over
        # what the vocabulary's symbols are: a BPE run's are tokens, not characters
        self.unit = "character" if hasattr(run.tokenizer, "chars") else "token"

    def draw(self) -> list[Section]:
        """Every picture this run has; a note for each that it has not."""
        config = self.run.config
        if config.data.task == "pairs":
            logits_V, maps, axes = self._pairs()
            tokens_N, why = None, ""
        else:
            logits_V, maps, axes = self._text()
            tokens_N, why = validation_tokens(config, self.run.tokenizer, self.workdir)
            self._check_blocks(tokens_N)
        try:  # only now: a prompt the run cannot read leaves no folder behind
            self.out.mkdir(parents=True, exist_ok=True)
            # an earlier page goes first: stopped half-way, this one would leave it describing
            # the new pictures as those of its run and prompt
            (self.out / INDEX).unlink(missing_ok=True)
        except OSError as e:
            raise UserError(f"cannot write in --out {self.out}: {e.strerror}") from None
        self._attention(maps, axes)
        self._embeddings()
        if config.model.name == "bigram":
            self._bigram_table()
        self._position_loss(tokens_N, why)
        self._next_token(logits_V)
        return self.sections

    def _text(self):
        """A language model on the prompt: its next-token logits, its attention, and the
        prompt's tokens for both axes of every map."""
        tokenizer, block_size = self.run.tokenizer, self.run.config.model.block_size
        ids = tokenizer.encode(self.prompt)
        unit = "characters" if hasattr(tokenizer, "chars") else "tokens"
        if len(ids) > block_size:
            raise UserError(f"the prompt has {len(ids)} {unit}, more than the run's block of "
                            f"{block_size} (model.block_size): shorten it")
        logits_BxTxV, maps = forward_with_attention(self.model, self.run.params,
                                                    np.asarray(ids, np.int32)[None])
        tokens = [self.labels[i] for i in ids]
        return logits_BxTxV[0, -1], stack_layers(maps), {"block/sa": (tokens, tokens)}

    def _pairs(self):
        """The source → target model on the prompt as its source, the target written greedily
        first; then one forward pass over source and <bos> + target."""
        from gpt_jax.pairs import PairVocab
        from gpt_jax.pairs_task import translate_texts

        config, vocab, params = self.run.config, self.run.tokenizer, self.run.params
        source_S = vocab.encode_source(self.prompt)
        S = config.data.max_source_len
        if len(source_S) > S:
            raise UserError(f"the prompt has {len(source_S)} characters, more than the longest "
                            f"source of this run (data.max_source_len = {S}): shorten it")
        self.target = translate_texts(self.run.model, params, config, vocab, [self.prompt])[0]
        target_in_T = np.array([PairVocab.BOS, *vocab.encode_source(self.target)], np.int32)
        source, written = ([self.labels[i] for i in ids] for ids in (source_S, target_in_T))
        if config.model.name == "encoder_decoder":
            logits_BxTxV, maps = forward_with_attention(self.model, params, source_S[None],
                                                        target_in_T[None])
            axes = {"encoder/sa": (source, source), "decoder/sa": (written, written),
                    "decoder/cross": (written, source)}
            return logits_BxTxV[0, 0], stack_layers(maps), axes
        # The decoder-only GPT reads one sequence, source<bos>target.
        self.sequence = "the source, <bos> and the written target"
        sequence_L = np.concatenate([source_S, target_in_T])
        logits_BxLxV, maps = forward_with_attention(self.model, params, sequence_L[None])
        return (logits_BxLxV[0, len(source_S)], stack_layers(maps),
                {"block/sa": (source + written, source + written)})

    def _add(self, heading: str, text: str, picture: str | None = None) -> None:
        self.sections.append(Section(heading, text, picture))
        if picture:
            print(f"wrote {self.out / picture}")

    def _attention(self, maps: dict[str, np.ndarray], axes: dict) -> None:
        from gpt_jax import pictures

        if not maps:
            m = self.run.config.model
            why = {"bigram": "each prediction reads one row of a table, chosen by the current "
                             "character",
                   "ngram": f"each prediction reads a table row chosen by the last {m.context} "
                            f"characters",
                   "mlp": f"each prediction reads a fixed window of the last {m.context} "
                          f"characters through one hidden layer"}.get(
                m.name, "it has no attention layers (n_layer = 0)")
            self._add("Attention", f"This model ({m.name}) has no attention: {why}. There is "
                                   f"no attention to draw.")
            return
        for kind, weights_LxHxTxS in maps.items():
            file, heading, causal, look_for = ATTENTION.get(kind, (
                f"attention_{kind.replace('/', '_')}.png", f"Attention: {kind}", False,
                "Each row is a query spreading its attention over the keys."))
            queries, keys = axes.get(kind, axes[next(iter(axes))])
            heading = heading.format(sequence=self.sequence)
            L, H = weights_LxHxTxS.shape[:2]
            title = f"{heading}\n{L} layer{'s' * (L > 1)} × {H} head{'s' * (H > 1)}"
            pictures.attention_grid(weights_LxHxTxS, queries, keys, causal, title,
                                    self.out / file)
            self._add(heading, look_for.format(unit=self.unit, sequence=self.sequence), file)

    def _embeddings(self) -> None:
        from gpt_jax import pictures

        params = self.run.params
        name = next((n for n in ("token_embedding_table", "source_embedding") if n in params),
                    None)
        heading = f"{self.unit.capitalize()} embeddings"
        if name is None:
            self._add(heading, f"This model ({self.run.config.model.name}) has no embedding "
                      f"table: its table is indexed by whole contexts, not by single "
                      f"{self.unit}s.")
            return
        if len(self.labels) > MAX_LABELLED:
            self._add(heading, f"The vocabulary has {len(self.labels):,} tokens, too many to "
                      f"label one by one: no picture.")
            return
        table_VxC = np.asarray(params[name]["embedding"], np.float64)
        # a source holds no <bos> or <eos>: their rows of the encoder's own table never train
        never = {"<pad>"} | ({"<bos>", "<eos>"} if name == "source_embedding"
                             and "target_embedding" in params else set())
        keep = [i for i, label in enumerate(self.labels) if label not in never]
        points_Vx2, explained = pca_2d(table_VxC[keep])
        if self.run.config.model.name == "bigram":
            what, alike = "rows of the bigram table", "Characters followed by the same " \
                "characters (the bigram's rows are the next character's logits)"
        elif "target_embedding" in params:  # untied: the encoder's table, the source's
            what, alike = "source's character embeddings (the encoder's own table)", \
                "Characters the encoder treats alike"
        else:  # a BPE run's vocabulary is of tokens
            what, alike = f"{self.unit} embeddings", f"{self.unit.capitalize()}s the model " \
                "treats alike"
        pictures.embedding_scatter(points_Vx2, [self.labels[i] for i in keep], explained,
                                   f"The {what}, projected to 2-D (PCA)",
                                   self.out / "embeddings.png")
        self._add(heading, f"{alike} sit close together: look for the vowels, "
                  f"the capitals, the digits and the punctuation gathered in clusters of their "
                  f"own colour.", "embeddings.png")

    def _bigram_table(self) -> None:
        from gpt_jax import pictures

        table_VxV = np.asarray(self.run.params["token_embedding_table"]["embedding"])
        if len(self.labels) > MAX_LABELLED:
            self._add("The bigram table", f"The vocabulary has {len(self.labels):,} tokens, "
                      f"too many to draw the table readably.")
            return
        probs_VxV = np.stack([softmax(row) for row in table_VxV])
        pictures.probability_table(probs_VxV, self.labels, "The bigram table: the probability "
                                   "of each next character", self.out / "bigram_table.png")
        self._add("The bigram table", "Row c is everything the bigram knows: the distribution "
                  "of the character after c. Look for 'u' after 'q', a space or a newline after "
                  "punctuation, and capitals after a newline.", "bigram_table.png")

    def _check_blocks(self, tokens_N: np.ndarray | None) -> None:
        """--blocks past the windows of the validation split: each is scored once at most,
        and the starts of every block asked for would be laid out in memory first."""
        if tokens_N is None:
            return
        T = self.run.config.model.block_size
        windows = len(tokens_N) - T
        if self.blocks > windows:
            raise UserError(f"--blocks={self.blocks} is more than the {windows:,} windows of "
                            f"block_size + 1 = {T + 1} tokens in the run's validation split: "
                            f"give at most {windows}, or 0 for the default")

    def _position_loss(self, tokens_N: np.ndarray | None, why: str) -> None:
        from gpt_jax import pictures

        heading = "Loss at each position of a block"
        config = self.run.config
        if config.data.task == "pairs":
            self._add(heading, "This run learns source → target pairs, not running text: the "
                      "loss by position is drawn for text runs only.")
            return
        if tokens_N is None:
            self._add(heading, f"The run's validation data cannot be read here ({why}): no "
                      f"picture.")
            return
        block_size = config.model.block_size
        blocks = self.blocks or default_blocks(block_size, self.run.tokenizer.vocab_size)
        try:
            mean_T, n = position_losses(self.model, self.run.params, tokens_N, block_size,
                                        blocks, self.run.tokenizer.vocab_size)
        except UserError as e:  # a damaged prepared folder: the other pictures still hold
            self._add(heading, f"The run's validation data cannot be scored ({e}): no picture.")
            return
        pictures.position_loss(mean_T, n, f"Validation loss by position "
                               f"({config.model.name}, block {block_size})",
                               self.out / "position_loss.png", self.unit)
        self._add(heading, self._position_caption(config.model), "position_loss.png")

    def _position_caption(self, model) -> str:
        """Why the loss by position has the shape it has, for the kind of model drawn."""
        if model.name == "bigram":
            return f"The bigram sees one {self.unit} wherever it stands, so its line is flat."
        if model.name in ("ngram", "mlp"):  # a window of model.context, not the block
            return (f"This {model.name} sees the last {model.context} {self.unit}s "
                    f"(model.context) and no more, so its loss falls over the first "
                    f"{model.context} positions and is flat after them.")
        if model.name == "gpt" and model.n_layer == 0:  # no attention: one token and its place
            return (f"Without blocks (n_layer=0) this GPT sees one {self.unit} and its "
                    f"position, not the ones before it: its line is all but flat, as the "
                    f"bigram's.")
        return (f"A model that attends gains from every {self.unit} of context it is given, "
                f"so its loss falls along the block; the bigram, which sees one {self.unit} "
                f"wherever it stands, would draw a flat line.")

    def _next_token(self, logits_V: np.ndarray) -> None:
        from gpt_jax import pictures

        probs_V = softmax(logits_V)
        best = np.argsort(-probs_V, kind="stable")[: self.top]
        prompt = pictures.readable(short(self.prompt))
        title = f"The next {self.unit} after “{prompt}”" if self.target is None else \
            f"The first character of the target for “{prompt}”"
        pictures.next_token_bars([self.labels[i] for i in best], probs_V[best], title,
                                 self.out / "next_char.png")
        self._add(f"The next {self.unit}", f"The model's {len(best)} likeliest guesses, with "
                  f"their probabilities: a confident model puts most of the mass on one or "
                  f"two.", "next_char.png")


def _summary(run, workdir: Path) -> str:
    """One line on the run: what it is, its size, its step and its validation loss there."""
    import jax

    from gpt_jax.metrics import read_metrics

    params = sum(int(np.size(x)) for x in jax.tree.leaves(run.params))
    m = run.config.model
    layers = f"{m.n_layer} encoder + {m.n_layer} decoder blocks" \
        if m.name == "encoder_decoder" else f"{m.n_layer} layer(s)"
    shape = "" if m.name in ("bigram", "ngram", "mlp") else \
        f", {layers} × {m.n_head} head(s), {m.n_embd} wide"
    line = f"{m.name}{shape}, block {m.block_size}, {params:,} parameters, step {run.step:,}"
    losses = [r["val_loss"] for r in read_metrics(workdir) if r.get("step") == run.step
              and isinstance(r.get("val_loss"), float)]
    if losses:
        unit = ("target token" if run.config.data.task == "pairs" else
                "character" if hasattr(run.tokenizer, "chars") else "token")  # BPE: a token
        line += f", val loss {losses[-1]:.3f} (nats per {unit})"
    return line


def write_index(out: Path, workdir: Path, run, prompt: str, target: str | None,
                sections: list[Section]) -> Path:
    """index.html: every picture with what to look for, and every note; relative links."""
    from gpt_jax import pictures, run_files

    e = html.escape
    head = [f"<p><b>Run</b>: <code>{e(str(workdir))}</code><br>{e(_summary(run, workdir))}"]
    if run.config.description:
        head.append(f"<br><i>{e(run.config.description)}</i>")
    head.append(f"<br><b>Prompt</b>: <code>{e(pictures.visible(prompt))}</code>")
    if target is not None:
        head.append(f"<br><b>Target written greedily</b>: <code>{e(target)}</code>")
    body = ["".join(head) + "</p>"]
    for s in sections:
        body.append(f"<h2>{e(s.heading)}</h2>")
        if s.picture:
            body.append(f'<figure><img src="{e(s.picture)}" alt="{e(s.heading)}">'
                        f"<figcaption>{e(s.text)}</figcaption></figure>")
        else:
            body.append(f'<p class="note">{e(s.text)}</p>')
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
{GENERATOR}
<title>Inside {e(workdir.name)}</title>
<style>
body {{ font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
figcaption, .note {{ color: #444; max-width: 60em; }}
.note {{ font-style: italic; }}
</style></head>
<body>
<h1>Inside {e(workdir.name)}</h1>
{chr(10).join(body)}
</body></html>
"""
    path = out / INDEX
    run_files.write_atomic(path, page)
    return path


GENERATOR = '<meta name="generator" content="gpt_jax.inspect">'
DRAWN = ("attention.png", "embeddings.png", "bigram_table.png", "position_loss.png",
         "next_char.png")  # and attention_*.png


def not_written_by_inspect(out: Path) -> str | None:
    """The name of an entry of an existing `out` that no inspection wrote, if any: inspect
    replaces its index.html and PNGs, and a folder of one's own (a site, the run's folder, /)
    lost its files. Its own: an index.html it wrote (its generator tag; before it, its title
    and style), and PNGs beside it."""
    if not out.is_dir():
        return None
    entries = sorted(p.name for p in out.iterdir())
    index = out / INDEX
    try:
        page = index.read_text(encoding="utf-8", errors="replace")[:2000] \
            if index.is_file() and not index.is_symlink() else ""
    except OSError:
        page = ""
    ours = GENERATOR in page or ("<title>Inside " in page and "figcaption, .note" in page)
    for name in entries:  # (an inspection stopped early leaves its PNGs without the page)
        drawn = name in DRAWN or (name.startswith("attention_") and name.endswith(".png"))
        if not ((name == INDEX and ours) or (drawn and (out / name).is_file())):
            return name
    return None


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def _main(argv: list[str]) -> None:
    cli.parse_flags(argv, USAGE, FLAGS)
    F = FLAGS
    _check(F.prompt != "", "--prompt is empty: give the text to inspect")
    cli.require_flags(FLAGS, ("workdir", "prompt"), USAGE)
    prompt = flag_text(F.prompt, "--prompt")
    _check(0 <= F.blocks <= INT32_MAX, f"--blocks must be in [0, {INT32_MAX}], got {F.blocks}")
    _check(1 <= F.top <= INT32_MAX, f"--top must be in [1, {INT32_MAX}], got {F.top}")
    _check(F.step is None or 0 <= F.step <= INT32_MAX,
           f"--step must be in [0, {INT32_MAX}], got {F.step}")
    _check(not (F.best and F.step is not None), "--best and --step choose a checkpoint "
           "each: give one")

    from gpt_jax import compilation_cache

    compilation_cache.enable()
    from gpt_jax.restore import load_run

    workdir = user_path(F.workdir).absolute()
    run = load_run(workdir, F.step, F.best)
    vocab_size = run.tokenizer.vocab_size
    _check(not FLAGS["blocks"].present or run.config.data.task != "pairs",
           "--blocks sets the windows of the loss by position, which is drawn for text runs "
           "only; this run learns source → target pairs: drop --blocks")
    _check(not FLAGS["top"].present or F.top <= vocab_size,
           f"--top={F.top} is more than the run's vocabulary of {vocab_size} tokens: give at "
           f"most {vocab_size}")
    out = user_path(F.out) if F.out else workdir / "inspect"
    kept = run_files.runs_checkpoints_holding(out, (run_files.CHECKPOINTS, run_files.DAMAGED))
    _check(kept is None, f"--out={out} is inside {kept}, which holds the checkpoints of a run: "
                         f"choose another folder (the default is {workdir / 'inspect'})")
    why = unreachable(out)  # a link in a loop, or to nothing: "File exists" said nothing
    _check(why is None, f"--out={out}: {why}")
    _check(not out.exists() or out.is_dir(), f"--out={out} is a file, not a folder")
    foreign = not_written_by_inspect(out)
    _check(foreign is None, f"--out={out} holds files that inspect did not write (such as "
                            f"{foreign!r}), which it would replace: choose a new or empty "
                            f"folder (the default is {workdir / 'inspect'})")
    inspection = Inspection(run, workdir, prompt, out, F.blocks, F.top)
    sections = inspection.draw()
    index = write_index(out, workdir, run, prompt, inspection.target, sections)
    print(f"wrote {index}")


def main() -> None:
    cli.run(lambda: _main(sys.argv), out_of_memory="out of memory while inspecting: lower "
            "--blocks, or inspect on a machine with more memory")


if __name__ == "__main__":
    main()
