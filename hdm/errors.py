"""The errors a tool reports as one line with exit code 2 (found before any work). They import
nothing heavy, so the tools that run without torch (hdm-predict --onnx) classify them too."""
import os


class ConfigError(ValueError):
    """A config problem; the message names the key path."""


class DataError(ValueError):
    """A problem with a config's data found before work, in one line naming the files."""


class RunFolderError(RuntimeError):
    """A run folder that may not be used as asked (one line; train.py exits with 2)."""


class UsageError(Exception):
    """A wrong argument found before any work."""


class Stopped(BaseException):
    """A stop signal (SIGTERM, SIGHUP) while a tool worked, raised where it works so that its cleanup runs
    (hdm.cli.console: one line, exit code 128 + the signal's number)."""

    def __init__(self, signum):
        import signal

        super().__init__(f"stopped by {signal.Signals(signum).name} before it finished")
        self.exit_code = 128 + signum


class NonFiniteOutput(RuntimeError):
    """A model gave NaN or infinite values for an image: a failure (exit code 1), never a result."""


def shown(path):
    """A file name as a message prints it: bytes that are not UTF-8 as \\xNN and control characters (a
    newline in a name) escaped, so that a message naming any file stays one printable line."""
    text = os.fsdecode(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ImageDataError(ValueError):
    """What is wrong with an image's bytes, in words; hdm.image_io puts the file's name in front."""
