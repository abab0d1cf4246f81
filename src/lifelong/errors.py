"""Exceptions for problems the user can fix. The CLI prints their message on one line and exits 2."""


class LifelongError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class DataError(LifelongError, ValueError):
    """A data file or array is missing, corrupt or invalid."""


class ConfigError(LifelongError, ValueError):
    """An unknown name, option or value in a configuration."""


class FolderBusy(ConfigError):
    """Another process holds the output folder (`files.exclusive`)."""


class StorageError(LifelongError, OSError):
    """A file could not be written (disk full, read-only file system, no permission)."""


class TrainingError(LifelongError, RuntimeError):
    """Training could not go on (for example the loss became non-finite)."""
