"""The exceptions a command turns into one line on stderr and a non-zero exit."""

import signal

EXIT_USER_ERROR = 2  # bad input, or a resource the command lacks (disk, memory)


class UserError(Exception):
    """A mistake the user can fix (bad flags, files, configs, resources): exit status 2."""


def output_failed(e: OSError) -> UserError:
    """A write to standard output that failed (a full disk, /dev/full): named as such, since
    the OSError carries no file name."""
    return UserError(f"cannot write standard output: {e.strerror}")


class Stopped(Exception):
    """Training stopped on a signal (Ctrl-C, SIGTERM from a scheduler, SIGHUP) after saving a
    checkpoint of the step it reached; the same command resumes from there."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP where no checkpoint is due: before training starts, while sampling,
    in a report or a prepare, or a second one while a checkpoint is saved. Raised like
    Ctrl-C's KeyboardInterrupt, so that it stops at once; `signum` says which."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum
