"""What the benchmarks check before any work: a benchmark runs for minutes or hours, and a
mistake in a flag is to be found in its first second, not when it writes its result."""

from __future__ import annotations

import tempfile
from pathlib import Path

from gpt_jax.errors import UserError
from gpt_jax.user_files import user_path

REPO = Path(__file__).resolve().parents[1]


def writable_folder(path: str, flag: str) -> Path:
    """`path` (~ expanded) as a folder, created if missing, that a file can be written in."""
    return _writable_folder(user_path(path), f"{flag}={path}")


def writable_file(path: str, flag: str = "--out") -> Path:
    """`path` (~ expanded) as a file that can be written, its folder created."""
    file = user_path(path)
    said = f"{flag}={path}"
    if file.is_dir():
        raise UserError(f"{said} is a folder; name the file to write, as in "
                        f"{flag}={file / 'result.json'}")
    if file.exists() and not file.is_file():
        raise UserError(f"{said} is not a regular file")
    _writable_folder(file.parent, said)
    if file.exists():
        try:
            open(file, "a").close()  # opened, not written: its content stays until the end
        except OSError as e:
            raise UserError(f"{said} cannot be written: {e.strerror}") from None
    return file


def _writable_folder(folder: Path, said: str) -> Path:
    for above in (folder, *folder.parents):
        if above.exists():
            if not above.is_dir():
                raise UserError(f"{said}: {above} is a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise UserError(f"{said}: cannot write in {folder}: {e.strerror}") from None
    return folder


def config_file(spec: str, flag: str) -> str:
    """The path of `spec`, a config file under configs/ as path.py[:variant]; one named from
    the repository (configs/x.py), which would be looked for in configs/configs/, is refused
    with the name to give."""
    path = spec.partition(":")[0]
    if not (REPO / "configs" / path).is_file() and (REPO / path).is_file():
        raise UserError(f"{flag}={spec}: name the file as under configs/, as in "
                        f"{flag}={Path(spec).name}")
    return str(REPO / "configs" / spec)


def decoder_only_configs(specs: list[str], flag: str = "--configs") -> None:
    """Each of `specs`, a config file under configs/, is a decoder-only GPT on text: what
    bench.py and sampling.py time (the GPT's sampler, its FLOPs, nanoGPT's model)."""
    from gpt_jax.config import load_config_file

    for spec in specs:
        if load_config_file(config_file(spec, flag)).data.task == "pairs":
            raise UserError(f"{flag}={spec} trains on source → target pairs; this benchmark "
                            f"times the decoder-only GPT on text (time the encoder–decoder's "
                            f"decoding with benchmarks/translation.py)")
