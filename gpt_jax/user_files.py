"""A user's input files (a corpus, pairs, prompts), checked before they are read: a pipe or a
device would be read forever, and a file larger than memory would be killed by the OS."""

from __future__ import annotations

from pathlib import Path

from gpt_jax.errors import UserError


def checked_input(path: str | Path, what: str, memory_per_byte: int) -> Path:
    """`path` (with ~ expanded) if it is a regular file whose loading, at `memory_per_byte`
    bytes of memory per byte of file, fits in memory; else one UserError naming it."""
    from gpt_jax.memory import available_memory

    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"{what} not found: {p}")
    if p.is_dir():
        raise UserError(f"{what} path is a directory, not a file: {p}")
    if not p.is_file():
        raise UserError(f"{what} path is not a regular file: {p}")
    size = p.stat().st_size
    limit, owner = available_memory()
    if size * memory_per_byte > limit:
        raise UserError(f"{what} {p} ({size / 2**30:.1f} GiB) would need about "
                        f"{size * memory_per_byte / 2**30:.0f} GiB of memory to load; {owner} "
                        f"{limit / 2**30:.0f} GiB")
    return p
