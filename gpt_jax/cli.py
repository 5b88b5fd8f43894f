"""What every command line shares: flags, --help, and turning every failure a user can meet
into one line on stderr and a non-zero exit, never a traceback or a hang.

Process-wide settings that a command changes are all here, in `command_settings`.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import io
import logging
import os
import re
import signal
import stat
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import NoReturn

from absl import flags

from gpt_jax import address_space, distributed, host_memory, runtime_log, stop
from gpt_jax.errors import EXIT_USER_ERROR, Stopped, Terminated, UserError, output_failed
from gpt_jax.user_files import unreachable, user_path

__all__ = ["UserError", "parse_flags", "run", "run_main"]

HELP = ("--help", "-h", "-help", "--helpfull", "--helpshort", "-?")


def parse_flags(argv: Sequence[str], usage: str, command_flags: flags.FlagValues) -> None:
    """Parses argv into a command's own flags; --help prints `usage` and those flags."""
    if any(arg in HELP for arg in argv[1:]):
        try:
            print(usage + "\n\n" + command_flags.get_help(), flush=True)
        except BrokenPipeError:  # `--help | head`: the reader has seen enough
            pass
        os._exit(0)
    overrides = _overrides(argv)
    try:
        unparsed = command_flags(list(argv))
    except UserError:
        raise
    except flags.Error as e:
        raise UserError(_flag_error(str(e))) from None
    except Exception as e:  # raised by config_flags while it loads the file or an override
        raise UserError(_config_flag_error(e, overrides)) from None
    if len(unparsed) > 1:  # absl leaves what is not a flag: a typo, never silently ignored
        raise UserError(f"unexpected argument {unparsed[1]!r}: every setting is a flag, as "
                        f"in --name=value (see --help)")
    _refuse_repeated(argv, command_flags)
    for name in PATH_FLAGS:
        if name in command_flags and command_flags[name].present:
            value = command_flags[name].value
            if value == "" or (isinstance(value, list) and "" in value):
                raise UserError(f"--{name} is empty: give a path")


def _refuse_repeated(argv: Sequence[str], command_flags: flags.FlagValues) -> None:
    """A flag of one value given twice on the command line (`--workdir=a --workdir=b`): absl
    keeps the last and drops the other without a word. Flags that take several (--prompt of
    the benchmarks, --set) may repeat; a flag file's value may be overridden."""
    seen: dict[str, str] = {}
    for arg in argv[1:]:
        if arg == "--":
            break
        name, _, _ = arg.lstrip("-").partition("=")
        if not arg.startswith("-") or name.startswith("config"):  # --config: check_argv's
            continue
        if name not in command_flags and name.startswith("no") and name[2:] in command_flags:
            name = name[2:]  # --nosampling, a boolean's other spelling
        if name not in command_flags or isinstance(command_flags[name], flags.MultiFlag) \
                or name == "flagfile":
            continue
        if name in seen:
            raise UserError(f"--{name} is given twice ({seen[name]}, {arg}): give it once")
        seen[name] = arg


# The commands' flags that name a file or a folder: an empty one is a mistake (a variable
# that was not set), never the current folder.
PATH_FLAGS = ("workdir", "prompts", "out", "input", "configs_dir", "nanogpt", "nanogpt_python",
              "trace_dir", "scratch")


FLAG_FILE_LIMIT = 1 << 20

# jax's switches, read from the environment, that this project's commands cannot run under,
# and why: each failed deep inside jax with a traceback.
JAX_SWITCHES_REFUSED = {
    "JAX_ENABLE_X64": "this project's arrays are float32, bfloat16 and int32, and 64-bit "
                      "defaults break their types",
    "JAX_DISABLE_JIT": "the train and sampling steps are compiled ahead of time, which needs "
                       "jit",
    "JAX_DEBUG_NANS": "the trainer stops on a non-finite loss or gradient itself, naming the "
                      "step, and jax's check trips on the NaN that a step computes on purpose",
}
# jax settings with values the commands cannot run under: the values they can.
JAX_VALUES_ACCEPTED = {
    "JAX_NUMPY_RANK_PROMOTION": ("allow", "warn"),  # the code broadcasts on purpose
    "JAX_NUMPY_DTYPE_PROMOTION": ("standard",),  # bfloat16 products meet float32 params
    **{f"JAX_TRANSFER_GUARD{way}": ("allow", "log")  # batches and params move to devices
       for way in ("", "_HOST_TO_DEVICE", "_DEVICE_TO_HOST", "_DEVICE_TO_DEVICE")},
}
FALSE_WORDS = ("0", "n", "no", "f", "false", "off")  # what jax reads as off; it refuses ""


def check_environment() -> None:
    """A UserError for a jax setting in the environment that the commands cannot run under
    (64-bit types, no jit, a check that the steps trip on purpose), or, for those switches,
    a value that jax itself would refuse to read (an empty value, a typo): refused alike,
    before any work, even by the commands that never import jax. Other settings that jax
    cannot read fail its import, which `run` says in one line (_jax_setting_refused)."""
    for name, why in JAX_SWITCHES_REFUSED.items():
        value = os.environ.get(name)
        if value is not None and value.lower() not in FALSE_WORDS:
            raise UserError(f"{name}={value}: {why}; unset it")
    xla_flags = os.environ.get("XLA_FLAGS", "").strip()
    if xla_flags and not xla_flags.startswith("--") and not os.path.isfile(xla_flags):
        raise UserError(f"XLA_FLAGS={xla_flags}: XLA reads a value that does not start with "
                        f"-- as the name of a file of flags, and there is no such file; write "
                        f"the flags as --name=value")  # XLA's own line ends the process
    for name, accepted in JAX_VALUES_ACCEPTED.items():
        value = os.environ.get(name)
        if value is not None and value not in accepted:
            raise UserError(f"{name}={value}: the commands run with {' or '.join(accepted)} "
                            f"only; unset it")


def _jax_setting_refused(e: Exception) -> str | None:
    """The one line for a jax setting of the environment that jax could not read (an
    exception of `import jax`), or None."""
    text = str(e)
    flag = re.fullmatch(r'Invalid value "(.*)" for JAX flag (\w+)', text)
    if isinstance(e, ValueError) and flag:
        return f"{flag[2].upper()}={flag[1]}: not a value jax accepts; fix or unset it"
    truth = re.fullmatch(r"invalid truth value '(.*)' for environment '(\w+)'", text)
    if isinstance(e, ValueError) and truth:
        return (f"{truth[2]}={truth[1]}: jax reads it as on or off (1 or 0, true or false); "
                f"fix or unset it")
    return None


def check_argv(argv: Sequence[str]) -> None:
    """What must hold before any flag is read: the current folder exists (relative paths are
    read from it), a --flagfile, and every --flagfile nested in one, is a regular UTF-8 file of
    at most 1 MiB that does not include itself (a pipe or a device would be read forever), and
    a --config file a regular file; no jax switch of the environment breaks the command."""
    try:
        os.getcwd()
    except FileNotFoundError:
        raise UserError("the current folder no longer exists (it was deleted while the shell "
                        "was in it): cd to a folder that exists and run the command again"
                        ) from None
    check_environment()
    configs: list[tuple[str, str, str]] = []
    _check_flags(argv[1:], within=(), configs=configs)
    # --config or one --config.field twice in one place (absl keeps the last, and drops the
    # other without a word); the command line overriding a flag file's is absl's usual way.
    given: dict[tuple[str, str], list[str]] = {}
    for name, value, where in configs:
        values = given.setdefault((name, where), [])
        values.append(value)
        if len(values) > 1:
            raise UserError(f"--{name} is given more than once{where} ({', '.join(values)}): "
                            f"give {'one config file' if name == 'config' else 'it once'}")
    # A --config of the command line in place of a flag file's is absl's way; but config_flags
    # defines the --config.field flags again for the second, and absl refuses that.
    files = [f"{value}{where or ' on the command line'}"
             for (name, where), values in given.items() if name == "config" for value in values]
    if len(files) > 1 and any(name.startswith("config.") for name, _ in given):
        raise UserError(f"--config is given in two places ({'; '.join(files)}) with "
                        f"--config.field overrides, which ml_collections cannot apply to a "
                        f"config file given twice: give --config once")


def _check_flags(args: Sequence[str], within: tuple[str, ...],
                 configs: list[tuple[str, str, str]]) -> None:
    """check_argv for the flags of the command line or, `within` these flag files, of one;
    adds each --config and --config.field to `configs`, as (name, value, where)."""
    from gpt_jax.config import config_path

    inside = f" (in --flagfile={within[-1]})" if within else ""
    for i, arg in enumerate(args):
        name, eq, value = arg.lstrip("-").partition("=")
        spaced = not eq and i + 1 < len(args) and not args[i + 1].startswith("-")
        if arg in ("--flagfile", "-flagfile") and i + 1 < len(args):  # absl's "--flagfile F"
            name, eq, value = "flagfile", "=", args[i + 1]
        if arg in ("--config", "-config") and i + 1 < len(args):
            name, eq, value = "config", "=", args[i + 1]
        if arg.startswith("-") and (name == "config" or name.startswith("config.")):
            configs.append((name, value if eq else args[i + 1] if spaced else "True", inside))
        if eq and name in ("flagfile", "config") and not value:  # a variable that was not set
            raise UserError(f"--{name}{inside} is empty: give a "
                            f"{'config file' if name == 'config' else 'file of flags'}")
        if not eq or name not in ("flagfile", "config") or not value:
            continue
        path = config_path(value) if name == "config" else user_path(value)
        if path.exists() and not path.is_file():
            raise UserError(f"--{name}={value}{inside}: not a regular file")
        if why := unreachable(path):  # a link in a loop or to nothing
            raise UserError(f"--{name}={value}{inside}: {why}")
        if name == "flagfile":
            if not path.is_file():
                raise UserError(f"--flagfile={value}{inside}: file not found")
            if value in within:
                raise UserError(f"--flagfile={value}{inside} includes itself")
            if path.stat().st_size > FLAG_FILE_LIMIT:
                raise UserError(f"--flagfile={value}{inside}: more than 1 MiB; a flag file "
                                f"holds flags")
            try:
                text = path.read_bytes().decode("utf-8")
            except UnicodeDecodeError as e:
                raise UserError(f"--flagfile={value}{inside} is not UTF-8 text "
                                f"(byte {e.start})") from None
            except OSError as e:
                raise UserError(f"--flagfile={value}{inside}: cannot read: "
                                f"{e.strerror}") from None
            _check_flags([line.strip() for line in text.splitlines()], (*within, value),
                         configs)


def _flag_error(message: str) -> str:
    """absl's message, with the type of a --config.field a value could not be parsed as."""
    unknown = re.match(r"Unknown command line flag '(config\.[\w.]+)'", message)
    if unknown:
        return _unknown_override("--" + unknown.group(1)) or message.splitlines()[0]
    loading = re.match(r"flag --config=(.*?): Error whilst parsing config file:\s*(.*)", message,
                       re.S)
    if loading:  # get_config() raised: the traceback's last line says what
        from gpt_jax.config import config_file_error

        spec, traceback = loading.groups()
        said = re.search(r"^gpt_jax\.errors\.UserError: (.*)$", traceback, re.M)
        return said.group(1) if said else config_file_error(spec, Exception(traceback))
    bad = re.match(r"flag (--config\.([\w.]+))=(.*?): (.*)", message, re.S)
    if not bad:
        return message.splitlines()[0]
    flag, dotted, value, reason = bad.groups()
    if "as a ConfigDict" in reason:
        return f"{flag} is a section; set one of its fields, as in {flag}.FIELD=VALUE"
    field = _field(_config_file(), dotted)
    kind = f" of type {type(field).__name__}" if field is not None else ""
    reason = re.sub(r"^\('(.+?)', .*\)$", r"\1", reason.splitlines()[0])
    return f"{flag}={value}: expected a value{kind} ({reason})"


def _given(argv: Sequence[str]) -> list[tuple[str, str, str]]:
    """Every --config and --config.field of the command line and of its flag files, as (name,
    value, where) in the order absl reads them (check_argv has refused what does not parse)."""
    configs: list[tuple[str, str, str]] = []
    with contextlib.suppress(UserError):
        _check_flags(argv[1:], within=(), configs=configs)
    return configs


def _overrides(argv: Sequence[str]) -> list[tuple[str, str]]:
    """(--config.field=value, where) of each override, a flag file's too."""
    return [(f"--{name}={value}", where) for name, value, where in _given(argv)
            if name.startswith("config.")]


def _config_flag_error(error: Exception, overrides: list[tuple[str, str]]) -> str:
    """One line for what config_flags raised: an unknown override (of the command line or
    of a flag file), or a config file that does not load."""
    from gpt_jax.config import config_file_error

    for arg, where in overrides:
        message = _unknown_override(arg)
        if message:
            return message + where
    return config_file_error(config_spec(), error)


def _unknown_override(arg: str) -> str | None:
    """'unknown config field --config.model.n_layr (did you mean ...)' if the override names
    no field of the config file, else None."""
    from gpt_jax.config import set_field

    config = _config_file()
    if config is None:
        return None
    dotted = arg[len("--config."):].partition("=")[0]
    try:
        set_field(config, dotted, _field(config, dotted))
    except UserError as unknown:
        return str(unknown)
    except Exception:
        return None
    return None


def _config_file():
    """The config file of --config, loaded again (only to explain an error), or None; without
    --config, the schema itself (the overrides of a command like the ladder)."""
    from gpt_jax.config import base_config, load_config_file

    if config_spec() == "the config file":
        return base_config()
    try:
        return load_config_file(config_spec()).copy_and_resolve_references()
    except Exception:
        return None


def _field(config, dotted: str):
    try:
        for key in dotted.split("."):
            config = config[key]
        return config
    except Exception:
        return None


def define_config_file(command_flags: flags.FlagValues, help_text: str) -> None:
    """--config=FILE.py[:variant] and its --config.section.field=value overrides."""
    from ml_collections import config_flags

    overrides = _overrides(sys.argv)
    try:
        config_flags.DEFINE_config_file("config", None, help_text, flag_values=command_flags)
    except flags.Error as e:
        raise UserError(_flag_error(str(e))) from None
    except Exception as e:
        raise UserError(_config_flag_error(e, overrides)) from None


def define_overrides(command_flags: flags.FlagValues, help_text: str) -> None:
    """--config.section.field=value overrides of base_config(), for a command that loads
    configs of its own (the ladder). config_flags reads them from sys.argv as it defines the
    flag, so it is defined here, inside the command, where a bad one becomes one line."""
    from ml_collections import config_flags

    from gpt_jax.config import base_config

    for name, value, where in _given(sys.argv):
        if name == "config":  # config_flags: "Overriding config is not allowed"
            raise UserError(f"--config={value}{where}: this command trains config files of its "
                            f"own; change a field of every one with "
                            f"--config.section.field=value")
    overrides = _overrides(sys.argv)
    try:
        config_flags.DEFINE_config_dict("config", base_config(), help_text,
                                        flag_values=command_flags)
    except flags.Error as e:
        raise UserError(_flag_error(str(e))) from None
    except Exception as e:
        raise UserError(_config_flag_error(e, overrides)) from None
    command_flags["config"].default_as_str = None  # --help: not the 60 lines of base_config()


def require_flags(command_flags: flags.FlagValues, names: tuple[str, ...], usage: str) -> None:
    """The flags a command cannot run without, named where missing, then its usage."""
    empty = [name for name in names if command_flags[name].value == ""]
    if empty:
        raise UserError(f"--{empty[0]} is empty: give a value; {usage}")
    missing = [f"--{name}" for name in names if command_flags[name].value in (None, [])]
    if missing:
        raise UserError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                        f"missing; {usage}")


def loaded_config(command_flags: flags.FlagValues):
    """The config --config loaded (config_flags), or a UserError saying why it did not load."""
    from gpt_jax.config import check_schema, config_file_error

    try:
        config = command_flags.config
        if not (config is None or type(config).__module__.startswith("ml_collections")):
            raise UserError(f"get_config() of {config_spec()} returned {repr(config)[:40]}, "
                            f"not a config (an ml_collections.ConfigDict)")
        config.lock()  # config_flags defers a failed load to the first access: this one
    except UserError:
        raise
    except Exception as e:
        raise UserError(config_file_error(config_spec(), e)) from None
    if config is not None:
        check_schema(config)  # before any field is read (the description, the data paths)
    return config


def config_spec() -> str:
    """The --config that absl takes: the last given, on the command line or in a flag file."""
    specs = [value for name, value, _ in _given(sys.argv) if name == "config"]
    return specs[-1] if specs else "the config file"


@contextlib.contextmanager
def command_settings() -> Iterator[None]:
    """The process-wide changes a command makes, each because it was measured to matter:
    - glibc keeps freed buffers for reuse (host_memory.py: 3% more tokens/s on a CPU);
    - orbax's log records stay off stderr: Checkpoints surfaces its failures as one line;
    - the reports of reads that orbax abandoned after a failed restore or save ("Event loop
      is closed", asyncio's "Task exception was never retrieved", printed whenever the
      garbage collector meets one) are dropped: not errors of ours, they would bury the line;
    - what the output's encoding cannot hold (a "→" or a sample's "é" under a latin-1 locale)
      is written escaped, "\\u2192", instead of failing the command with a traceback."""
    host_memory.keep_freed_memory()
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.CRITICAL)
    asyncio_logger = logging.getLogger("asyncio")
    asyncio_logger.addFilter(_not_an_abandoned_read)
    default_hook = sys.unraisablehook

    def hook(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            # A signal's exception raised inside a garbage-collection callback (jax has one),
            # where Python prints it and goes on: the signal is sent to the main thread again,
            # a moment later from another thread, to be raised once the callback has returned.
            signum = (unraisable.exc_value.signum
                      if isinstance(unraisable.exc_value, Terminated) else signal.SIGINT)
            threading.Timer(0.01, signal.pthread_kill,
                            (threading.main_thread().ident, signum)).start()
        elif not (isinstance(unraisable.exc_value, RuntimeError)
                  and str(unraisable.exc_value) == "Event loop is closed"):
            default_hook(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = default_hook
        absl_logger.setLevel(level)
        asyncio_logger.removeFilter(_not_an_abandoned_read)


def _not_an_abandoned_read(record: logging.LogRecord) -> bool:
    """False for asyncio's report of a task whose failure nobody awaited: orbax's reads of a
    damaged checkpoint that it gave up on once the first read failed."""
    return not str(record.msg).startswith(("Task exception was never retrieved",
                                           "Future exception was never retrieved"))


def print_now(text: str) -> None:
    """`text` as a line on standard output, at once. A write that fails (a full disk,
    /dev/full) names standard output, which its OSError does not (prepare's was taken for
    --out's disk); a reader that left (`| head`) ends the command quietly."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        raise
    except OSError as e:
        raise output_failed(e) from None


def _stdout_fails() -> bool:
    """Whether standard output cannot be written (/dev/full, a full disk): a failed write
    without a file name is most often a print's, whose failure left nothing to flush again."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):  # not a file at all (a notebook's)
        return False
    try:
        sys.stdout.flush()
        os.write(fd, b"")  # a device that refuses every write refuses this one too
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.fstatvfs(fd).f_bavail == 0
    except OSError:
        return True


def _fail(message: str) -> NoReturn:
    """_exit on this process's own error, told to the run's other processes first; an error
    that a peer's failure caused (a save whose collective it broke) names that failure."""
    if any(sign in message for sign in PEER_FAILURES):
        peer = distributed.a_peer_failed()
        if peer:
            _exit(f"error: {peer}", EXIT_USER_ERROR)
    distributed.failing(message.removeprefix("error: "))
    _exit(message, EXIT_USER_ERROR)


def _exit(message: str, code: int) -> NoReturn:
    """Prints one line and leaves at once: library threads still winding down (orbax's async
    helpers) would otherwise print tracebacks or keep the interpreter from exiting."""
    try:
        if runtime_log.first_to_speak():  # unless jax's runtime has just said a peer is lost
            print(message, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # the terminal that would show it is gone: the status still tells
        pass
    os._exit(code)


EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE  # what a shell reports for a writer its reader left


def _exit_quietly(code: int) -> NoReturn:
    """Leaves without a word: stdout's reader is gone, and Python's own flush at exit would
    otherwise report the broken pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os._exit(code)


# How a cross-process collective reports a peer that died or was killed (jax's CPU collectives
# run on Gloo; the coordination service notices missing heartbeats).
PEER_FAILURES = ("Gloo all-reduce failed", "Connection reset by peer", "heartbeat timeout",
                 "Connection closed by peer", "failed or was stopped")  # (checkpoint.py)
RESOURCE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS,
                   errno.EIO, errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EFBIG}
# A path the system refuses whatever it holds: a name too long, links in a loop.
PATH_ERRNOS = {errno.ENAMETOOLONG, errno.ELOOP}


def _raise(signum, frame):
    """Ctrl-C raises KeyboardInterrupt, SIGTERM and SIGHUP Terminated, each caught by `run`;
    while a module is being imported, the command ends at once instead."""
    if stop.a_repeat(signum):  # SIGXCPU's repeats, after the stop it asked for
        return
    stop.served()
    if stop.importing(frame):
        stop.exit_now(signum)
    raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)


def _no_backend_left(e: Exception) -> bool:
    """Whether `e` is jax's assertion that no backend started: JAX_PLATFORMS names only
    platforms it skipped (cuda on a machine without an NVIDIA GPU)."""
    frames = traceback.extract_tb(e.__traceback__)
    return (isinstance(e, AssertionError) and bool(os.environ.get("JAX_PLATFORMS"))
            and bool(frames) and frames[-1].filename.endswith("xla_bridge.py"))


def run_main(main: Callable[[list[str]], None], usage: str,
             out_of_memory: str | None = None) -> None:
    """An absl-style `main(argv)` (the benchmarks') run as every command of the package is:
    its flags parsed by parse_flags, bad input one line and exit status 2."""
    def parsed_then_main() -> None:
        parse_flags(sys.argv, usage, flags.FLAGS)
        main(sys.argv)

    run(parsed_then_main, out_of_memory)


OUT_OF_MEMORY = ("out of memory: use a smaller model, batch or block, more "
                 "train.grad_accum_steps, or fewer samples")


def run(main: Callable[[], None], out_of_memory: str | None = None) -> None:
    """Runs `main`; a UserError, a stop by signal or a resource failure (disk full, files
    that cannot be written, too many open files, out of memory) becomes one line on stderr and
    a non-zero exit, told first to the other processes of a multi-process run.
    `out_of_memory`: what to lower, in this command's flags (default: a training's)."""
    out_of_memory = f"error: {out_of_memory or OUT_OF_MEMORY}"
    # Run last of the exit's handlers (registered first): Python then restores the default
    # action of every signal it handles, and a signal in the tenth of a second that the
    # libraries' teardown takes after that killed the process without a word.
    atexit.register(stop.ignore_signals_at_exit)
    with command_settings():
        try:  # from the first handler on: a signal at once after it is one line too
            for signum in stop.SIGNALS:  # the trainer's loop installs its own
                if not stop.ignored_by_caller(signum):
                    signal.signal(signum, _raise)
            stop.watch_native_calls()
            check_argv(sys.argv)
            main()
            # The work is done and written; a signal while the libraries wind down (this
            # block's exit, jax's atexit) ends the process at once instead of raising there.
            stop.exit_at_once_on_signals()
        except Stopped as e:  # every process stops at this step: none is to report the others
            distributed.leaving()
            _exit(str(e), e.exit_code)
        except UserError as e:
            _fail(f"error: {e}")
        except BrokenPipeError:  # the reader of our output has stopped (`| head`): so do we
            _exit_quietly(EXIT_BROKEN_PIPE)
        except Terminated as e:  # before training (the trainer's loop agrees on a stop): the
            word, code = stop.SIGNALS[e.signum]  # others are told, or they wait for it
            stop.ignore_signals_at_exit()  # (a second one is no traceback out of the telling)
            distributed.failing(word)  # --distributed_timeout, then blame a frozen peer
            _exit(word, code)
        except KeyboardInterrupt:
            stop.ignore_signals_at_exit()
            distributed.failing("interrupted")
            _exit("interrupted", 130)
        except OSError as e:
            if e.errno in PATH_ERRNOS:
                _fail(f"error: cannot use the path {e.filename}: {e.strerror}")
            if e.errno not in RESOURCE_ERRNOS:
                raise
            where = f" {e.filename}" if e.filename else (
                " standard output" if _stdout_fails() else "")
            if e.errno == errno.EMFILE:  # opening any file, to read or to write
                _fail(f"error: cannot open{where}: {e.strerror} (the limit of `ulimit -n`: "
                      f"raise it)")
            _fail(f"error: cannot write{where}: {e.strerror}")
        except MemoryError:
            _fail(out_of_memory + address_space.note())
        except ImportError as e:  # a library's code that cannot be mapped into memory
            if "failed to map segment" not in str(e):
                raise
            _fail(f"error: cannot load {e.path or e.name}: out of memory"
                  f"{address_space.note()}")
        except RecursionError:
            _fail("error: a file nests too deeply to read (damaged JSON?)")
        except Exception as e:  # XLA's own errors are exception types of jaxlib's
            if "RESOURCE_EXHAUSTED" in str(e) or "Out of memory allocating" in str(e):
                _fail(out_of_memory + address_space.note())
            if "YNNPACK operation failed" in str(e):  # its allocation failed, said only in C++
                _fail(f"{out_of_memory} (XLA:CPU's YNNPACK kernel failed, as it does when it "
                      f"cannot allocate){address_space.note()}")
            if isinstance(e, RuntimeError) and "random_device" in str(e):  # no /dev/urandom
                _fail(f"error: XLA cannot open /dev/urandom ({str(e).splitlines()[0]}): too "
                      f"many open files for `ulimit -n`? raise it")
            if isinstance(e, RuntimeError) and "can't start new thread" in str(e):  # no stack
                _fail(f"error: cannot start a thread: out of memory{address_space.note()}")
            refused = _jax_setting_refused(e)
            if refused:
                _fail(f"error: {refused}")
            if str(e).startswith("Unable to initialize backend"):  # JAX_PLATFORMS names none
                _fail(f"error: {str(e).splitlines()[0]}")
            if _no_backend_left(e):
                _fail(f"error: JAX_PLATFORMS={os.environ['JAX_PLATFORMS']}: none of these "
                      f"platforms has a device on this machine (jax skips cuda without a "
                      f"visible NVIDIA GPU); set JAX_PLATFORMS=cpu or leave it unset")
            if any(sign in str(e) for sign in PEER_FAILURES):
                peer = distributed.a_peer_failed()  # its own words, where it wrote them
                _exit(f"error: {peer}" if peer else
                      "error: another process of this run failed or was stopped (a collective "
                      "lost its peer); run the same command on every process to resume from "
                      "the newest checkpoint", EXIT_USER_ERROR)
            distributed.failing(f"{type(e).__name__}: {(str(e) or ' ').splitlines()[0]}")
            if distributed.multi_process():  # jax's exit would wait for the peers it leaves
                traceback.print_exc()
                sys.stderr.flush()
                os._exit(1)
            raise
