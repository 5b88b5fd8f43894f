"""A user's input files (a corpus, pairs, prompts), checked before they are read: a pipe or a
device would be read forever, and a file larger than memory would be killed by the OS."""

from __future__ import annotations

import os
from pathlib import Path

from gpt_jax.errors import UserError

BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark, which some editors write first


def text_line(raw: bytes, number: int, where: str) -> str:
    """Line `number` (from 1) of a UTF-8 text file read as bytes, without its newline (\\n or
    \\r\\n) and, on line 1, a BOM. Bytes that are not UTF-8 are a UserError naming `where`."""
    body = raw.removesuffix(b"\n").removesuffix(b"\r")
    skipped = len(BOM) if number == 1 and body.startswith(BOM) else 0
    return _utf8(body, skipped, where)


def flag_text(value: str, flag: str) -> str:
    """A flag's text; the command line's bytes that are not UTF-8, which Python holds as lone
    surrogates ('\\udcc3': no tokenizer can read them), are a UserError naming the byte."""
    return _utf8(value.encode("utf-8", "surrogateescape"), 0, flag)


def _utf8(raw: bytes, skipped: int, where: str) -> str:
    """`raw` after its first `skipped` bytes, as UTF-8 text; else a UserError naming `where`
    and the first byte that is not UTF-8, counted in `raw`."""
    try:
        return raw[skipped:].decode("utf-8")
    except UnicodeDecodeError as e:
        column = skipped + e.start
        raise UserError(f"{where}: not UTF-8 text (byte 0x{raw[column]:02x} at byte column "
                        f"{column + 1})") from None


def user_path(path: str | Path) -> Path:
    """`path` with a leading ~ or ~user expanded; a user that does not exist is a UserError
    (pathlib raises RuntimeError: 'Could not determine home directory')."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        raise UserError(f"cannot expand {str(path).split('/')[0]} in {path}: no such user or "
                        f"home directory") from None


def unreachable(path: Path) -> str | None:
    """Why a path that `ls` may show cannot be opened (a link in a loop, or to nothing), or
    None: nothing is there at all, or it can be reached."""
    try:
        os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"a symbolic link to {os.readlink(path)}, which does not exist"
    except OSError as e:
        return e.strerror
    return None


def not_there(what: str, path: Path) -> UserError:
    """'{what} not found: {path}', or what stands in its way."""
    why = unreachable(path)
    return UserError(f"{what} {path}: {why}" if why else f"{what} not found: {path}")


def checked_input(path: str | Path, what: str, memory_per_byte: int) -> Path:
    """`path` (with ~ expanded) if it is a regular file whose loading, at `memory_per_byte`
    bytes of memory per byte of file, fits in memory; else one UserError naming it."""
    from gpt_jax.memory import available_memory

    p = user_path(path)
    if not p.exists():
        raise not_there(what, p)
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
