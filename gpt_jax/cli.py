"""What every command line shares: flag parsing and turning user errors into one line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from absl import flags

from gpt_jax import host_memory
from gpt_jax.errors import Interrupted, UserError

__all__ = ["UserError", "parse_flags", "run", "split_overrides"]

FLAGS = flags.FLAGS
CONFIG_OVERRIDE = "--config."


def split_overrides(argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Separates `--config.a.b=value` overrides from the flags absl parses."""
    rest, overrides = [], {}
    for arg in argv:
        if arg.startswith(CONFIG_OVERRIDE):
            dotted, eq, value = arg[len(CONFIG_OVERRIDE):].partition("=")
            if not eq:
                raise UserError(f"{arg}: an override needs a value, as in {arg}=VALUE")
            overrides[dotted] = value
        else:
            rest.append(arg)
    return rest, overrides


def parse_flags(argv: Sequence[str]) -> None:
    try:
        FLAGS(list(argv))
    except flags.Error as e:
        raise UserError(str(e)) from None


def _exit(message: str, code: int) -> NoReturn:
    """Prints one line and leaves at once: library threads still winding down (orbax's async
    helpers) would otherwise print tracebacks during interpreter shutdown. Saves in flight
    were waited for before the error reached here."""
    print(message, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(main: Callable[[], None]) -> None:
    """Runs `main`; a UserError or Ctrl-C becomes one line on stderr and a non-zero exit.
    Freed host memory is kept for reuse first (see host_memory.py), before jax allocates."""
    host_memory.keep_freed_memory()
    try:
        main()
    except Interrupted as e:
        _exit(str(e), 130)
    except UserError as e:
        _exit(f"error: {e}", 2)
    except KeyboardInterrupt:
        _exit("interrupted", 130)
