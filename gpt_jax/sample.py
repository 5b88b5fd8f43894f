"""`python -m gpt_jax.sample --workdir=DIR`: text from a trained run, restored from DIR alone.

A language model continues each prompt; an encoder–decoder (or a GPT trained on pairs)
writes the target of each prompt, read as a source: greedily unless a temperature, top-k or
top-p is given.
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the imports below, which take seconds (jax)
    from gpt_jax import first_step

    first_step.take()

import math
import stat
import sys
import time
from collections.abc import Iterator

from absl import flags

from gpt_jax import cli, first_step
from gpt_jax.config import INT32_MAX, SEED_MAX, require_float32
from gpt_jax.errors import UserError
from gpt_jax.user_files import checked_input, flag_text, text_line, user_path

GREEDY = ("; for the likeliest character every time, use --top_k=1 (a translation: no "
          "--temperature, --top_k or --top_p)")
PROMPTS_LIMIT = 64 << 20  # prompts are read whole: more than this is not a list of prompts

FLAGS = flags.FlagValues()  # this command's own: importing it defines no global flag
USAGE = ("usage: python -m gpt_jax.sample --workdir=DIR [--prompt=TEXT | --prompts=FILE] "
         "[--max_new_tokens=N] [--num_samples=N] [--temperature=T] [--top_k=K] [--top_p=P] "
         "[--seed=S] [--step=N | --best]")
flags.DEFINE_string("workdir", None, "A training run's folder.", flag_values=FLAGS)
flags.DEFINE_integer("step", None, "Checkpoint step to restore (default: the latest).",
                     flag_values=FLAGS)
flags.DEFINE_bool("best", False, "Restore, of the checkpoints kept, the one saved with the "
                  "lowest val loss instead of the latest (a warning where the run's lowest has "
                  "none, as step 0).", flag_values=FLAGS)
flags.DEFINE_string("prompt", "", "Text to continue (default: a newline, where the vocabulary "
                    "has one; only its last block_size tokens are read: characters, or a BPE "
                    "run's tokens), or the source to translate (at most data.max_source_len "
                    "characters).",
                    flag_values=FLAGS)
flags.DEFINE_string("prompts", None, "A UTF-8 file of prompts, one per line ('-': standard "
                    "input).", flag_values=FLAGS)
flags.DEFINE_integer("max_new_tokens", 500, "Tokens to generate per sample: characters, or a "
                     "BPE run's tokens (refused on a run on pairs: a translation stops at its end "
                     "token).",
                     flag_values=FLAGS)
flags.DEFINE_integer("num_samples", 1, "Samples per prompt, generated as one batch.",
                     flag_values=FLAGS)
flags.DEFINE_float("temperature", None, "Divides the logits: < 1 is more conservative "
                   "(default 1; a translation is greedy unless this, top_k or top_p is set).",
                   flag_values=FLAGS)
flags.DEFINE_integer("top_k", None, "Sample among the k most likely tokens only.",
                     flag_values=FLAGS)
flags.DEFINE_float("top_p", None, "Sample among the most likely tokens whose mass reaches "
                   "p (default 1).", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "Same seed, same text.", flag_values=FLAGS)
flags.DEFINE_integer("slide", 0, "When the context fills the block, drop this many oldest "
                     "tokens and prefill again (default block_size/2; 1 = exact, slowest).",
                     flag_values=FLAGS)
flags.DEFINE_bool("no_cache", False, "Re-run the whole context for every token (slow; for "
                  "comparison: the same text as the cache with --slide=1, in float32; bfloat16 "
                  "products round differently, which can flip a near-tie).", flag_values=FLAGS)

TRANSLATE_ROWS = 1024  # sources × samples translated in one batch: its memory, at most


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def _prompts(F) -> list[str]:
    """--prompt, or the lines of --prompts (a file, or '-' for standard input)."""
    if F.prompts is None:
        return [flag_text(F.prompt, "--prompt")]
    _check(not F.prompt, "pass --prompt or --prompts, not both")
    try:
        if F.prompts == "-":
            if sys.stdin.isatty():  # else a silent wait, as if the command hung
                print("reading the prompts from the terminal, one per line; end them with "
                      "Ctrl-D", file=sys.stderr, flush=True)
            raw = sys.stdin.buffer.read(PROMPTS_LIMIT + 1)
            _check(len(raw) <= PROMPTS_LIMIT, "the prompts on standard input pass 64 MiB")
        else:
            path = user_path(F.prompts)
            _check(not (path.exists() and stat.S_ISFIFO(path.stat().st_mode)),
                   f"--prompts {F.prompts} is a pipe: for prompts piped in, give --prompts=-")
            raw = checked_input(F.prompts, "--prompts file", 1).read_bytes()
            _check(len(raw) <= PROMPTS_LIMIT, f"--prompts {F.prompts} passes 64 MiB")
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read --prompts {F.prompts}: "
                        f"{getattr(e, 'strerror', None) or e}") from None
    where = "standard input" if F.prompts == "-" else F.prompts
    # Lines end at \n alone (a \r before it is dropped), as in a pair file: str.splitlines()
    # would also break at \r, \f, U+2028 ..., characters a source or a text may hold.
    prompts = [text_line(line, number, f"--prompts {where}, line {number}")
               for number, line in enumerate(raw.split(b"\n"), 1)]
    while prompts and not prompts[-1]:  # blank lines at the end (an editor's last newline)
        prompts.pop()
    _check(bool(prompts), f"--prompts {F.prompts} holds no prompt")
    return prompts


def _main(argv: list[str]) -> None:
    start = time.perf_counter()
    cli.parse_flags(argv, USAGE, FLAGS)
    F = FLAGS
    cli.require_flags(FLAGS, ("workdir",), USAGE)
    _check(F.temperature is None or 0 < F.temperature < math.inf,
           f"--temperature must be a finite number > 0, got {F.temperature}")
    _check(F.top_p is None or 0 < F.top_p <= 1, f"--top_p must be in (0, 1], got {F.top_p}")
    for name in ("temperature", "top_p"):
        if F[name].value is not None:
            require_float32(f"--{name}", F[name].value, GREEDY)
    _check(F.top_k is None or 1 <= F.top_k <= INT32_MAX,
           f"--top_k must be >= 1, got {F.top_k}")
    _check(1 <= F.max_new_tokens <= INT32_MAX,
           f"--max_new_tokens must be in [1, {INT32_MAX}], got {F.max_new_tokens}")
    _check(1 <= F.num_samples <= INT32_MAX,
           f"--num_samples must be in [1, {INT32_MAX}], got {F.num_samples}")
    _check(0 <= F.slide <= INT32_MAX, f"--slide must be >= 0, got {F.slide}")
    _check(0 <= F.seed <= SEED_MAX, f"--seed must be in [0, 2^32 - 1], got {F.seed}")
    _check(F.step is None or 0 <= F.step <= INT32_MAX, f"--step must be >= 0, got {F.step}")
    _check(not (F.best and F.step is not None), "--best and --step choose a checkpoint "
           "each: give one")
    _check(not (F.no_cache and FLAGS["slide"].present), "--slide is the KV cache's: "
           "--no_cache re-reads the last block_size tokens for every token, which the cache "
           "matches with --slide=1; drop one of them")
    _check("stdout" not in first_step.CLOSED, "standard output is closed: the samples would "
           "be written nowhere; send them to a file (> FILE) or a pipe")
    prompts = _prompts(F)

    from gpt_jax import compilation_cache

    compilation_cache.enable()
    from gpt_jax import memory
    from gpt_jax.restore import load_run

    run = load_run(F.workdir, F.step, F.best)
    vocab_size = run.tokenizer.vocab_size
    _check(F.top_k is None or F.top_k <= vocab_size, f"--top_k={F.top_k} is more than the "
           f"run's vocabulary of {vocab_size} tokens: give at most {vocab_size} (all of them: "
           f"plain sampling)")
    if run.config.data.task == "pairs":
        _check_translation_flags(run.config.model.name, F)
    # Sources are translated TRANSLATE_ROWS rows at a time; text prompts one after the other.
    batch = (min(F.num_samples * len(prompts), _rows_per_batch(F.num_samples))
             if run.config.data.task == "pairs" else F.num_samples)
    memory.require_fits(memory.sampling_bytes(run.config, run.tokenizer.vocab_size, batch,
                                              F.max_new_tokens), "sampling")
    if run.config.data.task == "pairs":
        from gpt_jax.pairs_task import encode_source

        _check_each(prompts, F, lambda source: encode_source(run.config, run.tokenizer, source))
        outputs = _translate(run, prompts, F)
    else:
        outputs = _continue(run, prompts, F)
    count = 0
    for text in outputs:
        cli.print_now(("\n" + "-" * 40 + "\n" if count and run.config.data.task != "pairs" else "")
               + text)
        count += 1
    print(f"[{count} sample(s) from step {run.step} in "
          f"{time.perf_counter() - start:.1f} s, restore and compilation included]",
          file=sys.stderr)


def _check_each(prompts: list[str], F, check) -> None:
    """Runs `check` on every prompt before anything compiles; an error in a --prompts file
    names its line."""
    for line, prompt in enumerate(prompts, 1):
        try:
            check(prompt)
        except UserError as e:
            if F.prompts is None:  # the one --prompt, perhaps not given at all
                raise UserError(f"{e}{' (--prompt=TEXT)' * (not prompt)}") from None
            where = "standard input" if F.prompts == "-" else F.prompts
            raise UserError(f"--prompts {where}, line {line}: {e}") from None


def _continue(run, prompts: list[str], F) -> Iterator[str]:
    """Each prompt followed by num_samples continuations of max_new_tokens characters, one
    prompt at a time: each is printed as soon as it is written."""
    from gpt_jax.generation import newline_ids, sample_texts

    _check_each(prompts, F, run.tokenizer.encode)
    if "" in prompts and newline_ids(run.tokenizer) is None:
        where = ("" if F.prompts is None else
                 f" (--prompts {'standard input' if F.prompts == '-' else F.prompts}, line "
                 f"{prompts.index('') + 1}, is empty)")
        raise UserError(f"this run's vocabulary has no newline, the default prompt{where}: "
                        f"give a prompt of its own characters")
    block_size = run.config.model.block_size
    most = max(block_size - 1, 1)  # a block of 1 slides by its one token, as by default
    _check(F.slide <= most, f"--slide must be at most {most} (block_size {block_size})")
    for prompt in prompts:
        texts = sample_texts(run.model, run.params, run.tokenizer, block_size, prompt,
                             F.max_new_tokens, F.num_samples, F.seed,
                             1.0 if F.temperature is None else F.temperature, F.top_k or 0,
                             1.0 if F.top_p is None else F.top_p, F.slide,
                             use_cache=not F.no_cache)
        yield from (prompt + text for text in texts)


def _check_translation_flags(model_name: str, F) -> None:
    """A run trained on pairs writes one target per prompt, as long as the task's targets:
    the flags that shape a continuation of text mean nothing there, and are refused rather
    than ignored."""
    for name in ("max_new_tokens", "slide"):
        _check(not FLAGS[name].present, f"--{name} is for continuing text; this run translates "
               f"each prompt, to a target as long as its task's (data.max_target_len)")
    sampling = [f"--{name}" for name in ("temperature", "top_k", "top_p")
                if FLAGS[name].present]
    _check(model_name == "encoder_decoder" or not (sampling or F.no_cache),
           f"{(sampling or ['--no_cache'])[0]}: this run, a decoder-only GPT on pairs, writes "
           f"its answers greedily, re-reading the whole window: drop it")
    drop = ("sample with --temperature, --top_k or --top_p, or drop"
            if model_name == "encoder_decoder" else "drop")  # the GPT refuses them: above
    _check(not FLAGS["seed"].present or sampling, f"--seed: greedy decoding draws nothing at "
           f"random, so every seed writes the same target; {drop} --seed")
    _check(F.num_samples == 1 or sampling, f"--num_samples={F.num_samples} with greedy "
           f"decoding writes the same target {F.num_samples} times; {drop} --num_samples")


def _rows_per_batch(num_samples: int) -> int:
    """Rows of one translation batch: whole sources' samples, at most TRANSLATE_ROWS."""
    return max(1, TRANSLATE_ROWS // num_samples) * num_samples


def _translate(run, sources: list[str], F) -> Iterator[str]:
    """The target written for each source (num_samples of each when sampling), a batch at a
    time, so that a long --prompts file needs one batch's memory and its first targets are
    printed before the last are written. A source's samples are the same in any batch, as a
    text prompt's are: the same seed, the same targets."""
    from gpt_jax.pairs_task import translate_texts

    greedy = F.temperature is None and F.top_k is None and F.top_p is None
    per_batch = _rows_per_batch(F.num_samples) // F.num_samples
    for first in range(0, len(sources), per_batch):
        batch = sources[first:first + per_batch]
        if len(sources) > per_batch:  # the last batch as long as the others: one program
            batch += batch[:1] * (per_batch - len(batch))
        written = translate_texts(run.model, run.params, run.config, run.tokenizer, batch,
                                  F.seed, greedy, 1.0 if F.temperature is None else F.temperature,
                                  F.top_k or 0, 1.0 if F.top_p is None else F.top_p,
                                  use_cache=not F.no_cache, num_samples=F.num_samples)
        yield from written[:F.num_samples * len(sources[first:first + per_batch])]


def main() -> None:
    first_step.take()  # again for the installed gpt-jax-sample script, which skips the top's
    cli.run(lambda: _main(sys.argv), out_of_memory="out of memory while sampling: give fewer "
            "prompts, or a lower --num_samples or --max_new_tokens")


if __name__ == "__main__":
    main()
