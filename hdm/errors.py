"""The errors a tool reports as one line with exit code 2 (found before any work). They import
nothing, so the tools that run without torch (hdm-predict --onnx) classify them too."""


class ConfigError(ValueError):
    """A config problem; the message names the key path."""


class DataError(ValueError):
    """A problem with a config's data found before work, in one line naming the files."""


class RunFolderError(RuntimeError):
    """A run folder that may not be used as asked (one line; train.py exits with 2)."""


class UsageError(Exception):
    """A wrong argument found before any work."""
