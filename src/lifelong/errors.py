"""Exceptions for problems the user can fix. The CLI prints their message on one line and exits 2."""

from __future__ import annotations


class LifelongError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class DataError(LifelongError, ValueError):
    """A data file or array is missing, corrupt or invalid."""


class ConfigError(LifelongError, ValueError):
    """An unknown name, option or value in a configuration.

    The message names the Python argument in backticks (`lam`), as a notebook user typed it;
    `argument` says whose it is (`"ewc.lam"` for a strategy's or method's option, `"batch_size"` for a
    config field), so that the command line can put its own flag (`--ewc-lambda`) in its place
    (`for_flags`)."""

    def __init__(self, message: str, argument: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument

    def for_flags(self, flag: str) -> str:
        """The message with the argument's Python name replaced by the command-line `flag`."""
        name = (self.argument or "").rpartition(".")[2]
        return str(self).replace(f"`{name}`", flag) if name else str(self)


class FolderBusy(ConfigError):
    """Another process holds the output folder (`files.exclusive`)."""


class StorageError(LifelongError, OSError):
    """A file could not be written (disk full, read-only file system, no permission)."""


class TrainingError(LifelongError, RuntimeError):
    """Training could not go on (for example the loss became non-finite)."""
