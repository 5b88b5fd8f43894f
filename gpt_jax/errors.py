"""The one exception type for mistakes a user can fix (bad flags, files, configs)."""


class UserError(Exception):
    """Raised at the boundary; the CLI prints it as one line and exits non-zero."""


class Interrupted(UserError):
    """Training was stopped by SIGINT after saving a checkpoint; the same command resumes."""
