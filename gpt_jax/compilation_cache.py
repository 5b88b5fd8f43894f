"""XLA's persistent compilation cache: a compiled step is stored on disk and a later run of
the same program (a resumed run, the sampler, the next ladder step) loads it instead of
compiling again. On a CPU that turns seconds of start-up into a fraction of one.

GPT_JAX_CACHE_DIR chooses the folder (default ~/.cache/gpt_jax/xla); "off" disables it.
JAX_COMPILATION_CACHE_DIR, if set, wins, as jax reads it itself.
"""

import os
import sys
import warnings
from pathlib import Path

ENV = "GPT_JAX_CACHE_DIR"


def enable() -> None:
    """Turns the cache on (after jax.distributed has started: it looks at the devices)."""
    import jax

    if jax.default_backend() == "cpu" and jax.local_device_count() > 1:
        # Several CPU devices are a test setup (XLA_FLAGS's fake devices), and loading some
        # of their cached programs crashes XLA here: seen with jax 0.10.2, a segmentation
        # fault in the first train chunk of a pairs run with dropout on 2 devices.
        jax.config.update("jax_enable_compilation_cache", False)
        return
    # A write or read that fails later (the disk filled up, no file descriptor left) only
    # costs a compilation: jax's two-line warnings about it, one per program, are not news
    # worth the screen; whichever folder holds the cache.
    warnings.filterwarnings("ignore", message="Error (reading|writing) persistent compilation "
                            "cache entry")
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    folder = os.environ.get(ENV) or str(Path.home() / ".cache" / "gpt_jax" / "xla")
    if folder.lower() == "off":
        return
    try:  # unusable (a file there, no permission, a full disk): compile as if it were off
        Path(folder).mkdir(parents=True, exist_ok=True)
        usable = os.access(folder, os.W_OK | os.X_OK)
        why = "not writable"
    except FileExistsError:
        usable, why = False, "not a folder"
    except OSError as e:
        usable, why = False, e.strerror
    if not usable:
        if os.environ.get(ENV):  # the user's own choice: say why it is not taken
            print(f"warning: {ENV}={folder} cannot hold the compilation cache ({why}): "
                  f"compiling without it", file=sys.stderr)
        return
    jax.config.update("jax_compilation_cache_dir", folder)
    # Cache anything that took a noticeable time to compile; tiny programs are not worth a file.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
