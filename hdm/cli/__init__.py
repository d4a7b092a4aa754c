"""The command-line tools (console scripts hdm-train, hdm-test, hdm-predict, hdm-evaluate; `python
train.py` and `python test.py` at the repository root are the same tools).

Each tool's `main(argv)` does the work and raises on failure; `console(main)` is what runs from the
command line: it checks the environment variables the project reads (hdm.environment) first, then runs
main; a failure is one line on stderr, exit code 2 for usage, config and data errors and bad environment
variables found before any work, 1 for failures while working; `--debug` shows the traceback instead.
SIGTERM and SIGHUP stop a tool where it works, so that what it made is cleaned up as for a failure (no
temporary file, no empty folder, results moved aside put back): one line, exit code 128 + the signal's
number (training saves a checkpoint first: hdm.runtime.StopRequest).

The `type=` helpers below (positive_int, non_negative_int, positive_float, fraction, existing_file,
existing_folder, device_name) check an option's value as argparse reads it: a bad value is Parser's one-line
UsageError naming the option (exit 2), before any work.
"""
import argparse
import contextlib
import math
import os
import re
import signal
import sys
import threading

from hdm import environment
from hdm.errors import ConfigError, DataError, RunFolderError, Stopped, UsageError, shown

USAGE_ERRORS = (ConfigError, DataError, RunFolderError)
PREFIX = {ConfigError: "config error", DataError: "data error", RunFolderError: "run folder"}


OVERRIDE = re.compile(r"[A-Za-z_]\w*(\.\w+)*=")  # a dotted override: key.path=value


class Parser(argparse.ArgumentParser):
    """argparse with the tools' conventions: the docstring as description, the error as one line
    (UsageError) instead of usage text and an exit, dotted overrides mixed freely with options."""

    def __init__(self, doc, **kwargs):
        super().__init__(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (--help lists the arguments)")

    def add_config(self, example):
        """-c CONFIG and the dotted overrides that follow it (`example` shows one)."""
        self.add_argument("-c", "--config", required=True, help="YAML config file")
        self.add_argument("overrides", nargs="*", help=f"dotted overrides, e.g. {example}")

    def parse(self, argv):
        """The arguments (`--` ends the options). A key=value word after an option of several values (test.py's --preset a b) is a
        dotted override, not one of that option's values; elsewhere argparse places every word."""
        argv = sys.argv[1:] if argv is None else list(argv)
        if "--" in argv:  # every word after it is an argument, a file named -x.png too; options come before it
            return self.parse_args(argv)
        several = {s for action in self._actions if action.nargs in ("+", "*") for s in action.option_strings}
        if not any(action.dest == "overrides" for action in self._actions) or not several:
            return self.parse_intermixed_args(argv)
        pulled, rest, after_several = [], [], False
        for word in argv:
            if word.startswith("-"):
                after_several = word in several
            elif after_several and OVERRIDE.match(word):
                pulled.append(word)
                continue
            rest.append(word)
        args = self.parse_intermixed_args(rest)
        args.overrides = sorted([*args.overrides, *pulled], key=argv.index)  # in the order given: the last wins
        return args


def _number(text, kind, fits, expected):
    """text as `kind` (int or float) when fits(value), else argparse.ArgumentTypeError saying what was expected."""
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not fits(value):  # NaN fits no comparison
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text):
    """argparse type: a whole number >= 1 (a count, a size in pixels)."""
    return _number(text, int, lambda v: v >= 1, "a whole number >= 1")


def non_negative_int(text):
    """argparse type: a whole number >= 0 (a seed, an overlap)."""
    return _number(text, int, lambda v: v >= 0, "a whole number >= 0")


def positive_float(text):
    """argparse type: a finite number > 0 (seconds, an exponent)."""
    return _number(text, float, lambda v: 0 < v < math.inf, "a finite number > 0")


def fraction(text):
    """argparse type: a number in [0, 1] (a weight, a share, a noise sigma on [0, 1] images)."""
    return _number(text, float, lambda v: 0 <= v <= 1, "a number in [0, 1]")


def inputs_of(path):
    """The image files a tool reads for `path`: the folder's images, or the file itself (the reader
    refuses what is not a regular image file); UsageError when there is none."""
    from hdm.image_io import images_in

    if not path:
        raise UsageError("'': an empty path (expected an image file or a folder of images)")
    if os.path.isdir(path):
        files = images_in(path)
    elif os.path.lexists(path):
        files = [path]
    else:
        raise UsageError(f"{shown(path)}: no such file or folder")
    if not files:
        raise UsageError(f"{path}: no images found")
    return files


def existing_file(text):
    """argparse type: a file that exists and can be read."""
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{shown(text)}: {'not a file' if os.path.lexists(text) else 'no such file'}")
    if not os.access(text, os.R_OK):
        raise argparse.ArgumentTypeError(f"{shown(text)}: not readable")
    return text


def existing_folder(text):
    """argparse type: a folder that exists and can be read."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{shown(text)}: {'not a folder' if os.path.lexists(text) else 'no such folder'}")
    if not os.access(text, os.R_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{shown(text)}: not readable")
    return text


def device_name(text):
    """argparse type: a device this machine has (hdm.config.check_device: auto, cpu, cuda, cuda:<n>)."""
    from hdm.config import check_device  # imports torch: only the tools that take --device pay for it

    try:
        check_device(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(first_line(err).removeprefix("device: ")) from err
    return text


def first_line(err):
    """The first line of an error's message, printable (bytes of a file name that are not UTF-8 as \\xNN)."""
    text = str(err).strip().encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text.splitlines()[0] if text else type(err).__name__


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _stop(signum, frame):
    raise Stopped(signum)


@contextlib.contextmanager
def stopping_cleanly(signals=STOP_SIGNALS):
    """`signals` raise hdm.errors.Stopped while the block runs (in the main thread), so that its cleanup runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _stop) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def console(main, argv=None):
    """Run main(argv) as a command: one line and an exit code for every failure (see the module doc)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 never stops a tool at a print
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    debug = "--debug" in argv[:argv.index("--") if "--" in argv else len(argv)]  # after --, a file's name
    if debug:
        argv.remove("--debug")
    try:
        environment.check()
        with stopping_cleanly():
            result = main(argv)
    except Stopped as err:
        if debug:
            raise
        print(f"{err}; nothing partial was left", file=sys.stderr)
        sys.exit(err.exit_code)
    except (*USAGE_ERRORS, UsageError) as err:
        if debug:
            raise
        prefix = PREFIX.get(type(err), "error")
        print(f"{prefix}: {first_line(err)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - every failure is one line; --debug shows the traceback
        if debug:
            raise
        from hdm.engine import StoppedBySignal, TrainingStopped

        if isinstance(err, StoppedBySignal):  # saved, not finished: 128 + the signal's number, never 0
            print(first_line(err), file=sys.stderr)
            sys.exit(err.exit_code)
        if isinstance(err, TrainingStopped):  # the message says all: where it stopped, what is saved
            print(f"training stopped: {first_line(err)}", file=sys.stderr)
        else:
            kind = "" if isinstance(err, (OSError, ValueError, RuntimeError)) else f"{type(err).__name__}: "
            print(f"error: {kind}{first_line(err)} (--debug shows the traceback)", file=sys.stderr)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
