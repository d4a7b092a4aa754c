"""What a config value or constructor argument may be, and the one check of a value against it.

A kind is a Python type or typing annotation: bool, int, float (an int is accepted), str, dict,
Optional[X], Union[X, Y], Tuple[X, Y] (exactly that many items), Tuple[X, ...], List[X] or Sequence[X]
(any number). A limit narrows a kind: Range (numbers), OneOf (choices), Letters (a string over an
alphabet) and PATH and RUN_NAME apply to a scalar and to each item of a list; Ordered (a [low, high]
pair) and Keywords (a mapping of a function's keyword arguments) apply to the whole value.

The kind of a constructor argument is its annotation, else its default's type (`argument_kinds`); a
class states the limits of its arguments once, in its LIMITS table. `check_arguments` applies both:
hdm.config calls it on a config section before any work, and the constructors of the classes the
config tables name call it on their own arguments.

Everywhere: numbers are finite and fit float32 (the tensors they reach; a nonzero number is at least its
smallest normal number), integers fit 32 bits, true and false are not numbers, strings hold no NUL and at
most 4096 characters (PATH_MAX), and the keys of a mapping are strings.
"""
import collections.abc
import difflib
import functools
import inspect
import math
import numbers
import os
import typing
from typing import Any, Callable, NamedTuple, Optional, Union

from hdm.errors import ConfigError

INT_LIMIT = 2 ** 31  # counts, sizes and seeds reach torch, NumPy and OpenCV: 32 bits is what all of them take
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 1.1754943508222875e-38  # the smallest normal float32: a nonzero number below it is 0 or imprecise there
MAX_TEXT = 4096  # PATH_MAX on Linux; no config string needs more


def brief(value, width=60):
    """repr(value), cut to `width` characters, for messages."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _number(x):
    return f"{x:g}" if isinstance(x, float) else str(x)


class Range(NamedTuple):
    """low <= x <= high; an open end excludes the bound itself; None: unbounded."""
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False
    whole = False

    def holds(self, x):
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            return False
        return self.high is None or not (x > self.high or (self.high_open and x == self.high))

    def __str__(self):
        if self.low is not None and self.high is not None:
            return (f"in {'(' if self.low_open else '['}{_number(self.low)}, {_number(self.high)}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_number(self.low)}"
        return f"{'<' if self.high_open else '<='} {_number(self.high)}"


class OneOf(NamedTuple):
    """One of the choices (null among them where None is)."""
    choices: tuple
    whole = False

    def holds(self, x):
        return any(x == c and type(x) is type(c) for c in self.choices)

    def __str__(self):
        return "one of " + ", ".join("null" if c is None else str(c) for c in self.choices)


class Available(NamedTuple):
    """One of the choices that works on this machine: `here()` gives those (a backend whose library loads)."""
    choices: tuple
    here: Callable
    whole = False

    def holds(self, x):
        return any(x == c and type(x) is type(c) for c in self.choices) and x in self.here()

    def __str__(self):
        return f"one of {', '.join(map(str, self.choices))} that works here (here: {', '.join(self.here())})"


class Letters(NamedTuple):
    """A string made of these letters only (repeats allowed, empty allowed)."""
    alphabet: str
    whole = False

    def holds(self, x):
        return set(x) <= set(self.alphabet)

    def __str__(self):
        return f"made of the letters {', '.join(self.alphabet)}"


class Ordered(NamedTuple):
    """A [low, high] pair with low <= high, each item within `item`."""
    item: Range
    whole = True

    def holds(self, x):
        return all(self.item.holds(v) for v in x) and list(x) == sorted(x)


class _Path:
    """A file or folder path: not empty."""
    whole = False

    def holds(self, x):
        return x != ""

    def __str__(self):
        return "a non-empty path"


class _RunName:
    """One folder name inside work_dir: the run folder may be neither work_dir itself nor outside it, nor
    work_dir/results (test.py's results of weights that are not a run's)."""
    whole = False
    MAX_BYTES = 200  # a file system allows 255 per name, and --overwrite appends .old-<time>
    RESERVED = "results"

    def holds(self, x):
        try:
            size = len(os.fsencode(x))
        except UnicodeError:
            return False
        seps = [s for s in ("/", os.sep, os.altsep) if s]
        return x not in ("", ".", "..") and not any(s in x for s in seps) and not os.path.isabs(x) \
            and size <= self.MAX_BYTES and x.casefold() != self.RESERVED

    def __str__(self):
        return f"one folder name (not empty, '.', '..' or {self.RESERVED!r}, without '/', at most {self.MAX_BYTES} bytes)"


PATH = _Path()
RUN_NAME = _RunName()


class Keywords(NamedTuple):
    """A mapping of keyword arguments of `function` (less `exclude`), each of the kind of its default and
    within the limit the function states in its LIMITS attribute, if any."""
    function: object
    exclude: tuple = ()
    whole = True

    def kinds(self):
        kinds = _parameter_kinds(self.function, self.function.__qualname__, strict=False)
        return {name: kind for name, kind in kinds.items() if name not in self.exclude}

    def __str__(self):
        return f"with keys among {', '.join(self.kinds())}" if self.kinds() else "without keys"


# ----- kinds -----


def _optional_parts(kind):
    return typing.get_args(kind) if typing.get_origin(kind) is Union else (kind,)


def _sequence_items(kind):
    """(item kinds, fixed length or None) of a sequence kind, None for any other kind."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return (args[0],), None
        return args, len(args)
    if origin in (list, collections.abc.Sequence):
        return (args[0] if args else Any,), None
    return None


def _scalar_fits(value, kind):
    if kind is Any:
        return True
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool) and -INT_LIMIT <= value < INT_LIMIT
    if kind is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and \
            (value == 0 or FLOAT32_TINY <= abs(value) <= FLOAT32_MAX)
    if kind is str:
        return isinstance(value, str) and "\0" not in value and len(value) <= MAX_TEXT
    if kind is dict:
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    raise TypeError(f"unsupported kind {kind!r}")


def _fits(value, kind, limit):
    """Whether value is of the kind and within the limit (a limit on items applies to each item)."""
    if typing.get_origin(kind) is Union:
        return any(_fits(value, part, limit) for part in typing.get_args(kind))
    sequence = _sequence_items(kind)
    if sequence is not None:
        items, length = sequence
        if not isinstance(value, (list, tuple)) or (length is not None and len(value) != length):
            return False
        item_limit = limit.item if isinstance(limit, Ordered) else None if limit is not None and limit.whole else limit
        if not all(_fits(v, items[i] if length else items[0], item_limit) for i, v in enumerate(value)):
            return False
        return not isinstance(limit, Ordered) or limit.holds(value)
    if not _scalar_fits(value, kind):
        return False
    if value is None or kind is dict or limit is None or limit.whole:
        return True
    return limit.holds(value)


_WORDS = {bool: ("true or false", "true or false"), int: ("an integer", "integers"), float: ("a number", "numbers"),
          str: ("a string", "strings"), dict: ("a mapping", "mappings"), Any: ("anything", "anything")}


def describe(kind, limit=None, plural=False):
    """What a value of this kind and limit is, in words: 'an integer >= 1', 'null or a list of 3 numbers > 0'."""
    parts = _optional_parts(kind)
    if len(parts) > 1:
        rest = [p for p in parts if p is not type(None)]
        text = " or ".join(describe(p, limit, plural) for p in rest)
        return f"null or {text}" if len(rest) < len(parts) else text
    sequence = _sequence_items(kind)
    if sequence is not None:
        items, length = sequence
        if isinstance(limit, Ordered):
            return f"a [low, high] pair of {describe(items[0], limit.item, plural=True)} with low <= high"
        words = describe(items[0], None if limit is not None and limit.whole else limit, plural=True)
        return f"a list of {length} {words}" if length else f"a list of {words}"
    if isinstance(limit, OneOf):
        return str(limit)
    if limit is PATH:
        return "non-empty paths" if plural else str(limit)
    if limit is RUN_NAME:
        return str(limit)
    words = _WORDS[kind][1 if plural else 0]
    return f"{words} {limit}" if limit is not None else words


def _why_not(value):
    """What makes a number or string unacceptable everywhere, or ''."""
    if isinstance(value, float) and not math.isfinite(value):
        return " (not a finite number)"
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and abs(value) >= INT_LIMIT:
        return " (integers here fit 32 bits)"
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and abs(value) > FLOAT32_MAX:
        return " (beyond float32's range)"
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 < abs(value) < FLOAT32_TINY:
        return " (below float32's smallest normal number: 0 or imprecise there)"
    if isinstance(value, str) and "\0" in value:
        return " (a NUL character)"
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return f" ({len(value)} characters; at most {MAX_TEXT})"
    return ""


def check_value(value, kind, limit, where):
    """ConfigError '<where>: expected <what>, got <value>' unless value is of the kind and within the limit."""
    if isinstance(limit, Keywords) and isinstance(value, dict) and all(isinstance(k, str) for k in value):
        kinds = limit.kinds()
        for key, item in value.items():
            if key not in kinds:
                raise ConfigError(f"{where}.{key}: not a keyword of {limit.function.__name__}; valid: "
                                  f"{', '.join(kinds)}")
            check_value(item, kinds[key], getattr(limit.function, "LIMITS", {}).get(key), f"{where}.{key}")
        return
    if _fits(value, kind, limit):
        return
    if isinstance(limit, OneOf) and _fits(value, kind, None):  # of the kind, but not a choice
        near = difflib.get_close_matches(str(value), [str(c) for c in limit.choices], n=1, cutoff=0.5)
        raise ConfigError(f"{where}: {brief(value)} is not {limit}{f'; did you mean {near[0]}?' if near else ''}")
    raise ConfigError(f"{where}: expected {describe(kind, limit)}, got {brief(value)}{_why_not(value)}")


# ----- constructor arguments -----


def _kind_of_default(default, where):
    if isinstance(default, (bool, int, float, str, dict)):
        return type(default)
    if isinstance(default, (tuple, list)) and default:
        types = {type(v) for v in default}
        item = float if types == {int, float} else types.pop() if len(types) == 1 else None
        if item in (int, float, str, bool):
            return typing.Tuple[(item,) * len(default)]
    raise TypeError(f"{where}: annotate this argument (its kind does not follow from its default {default!r})")


def _parameter_kinds(function, name, strict=True):
    """{parameter: kind} of a function; a parameter whose kind is unknown: TypeError, or Any unless strict."""
    hints = typing.get_type_hints(function)
    kinds = {}
    for param in inspect.signature(function).parameters.values():
        if param.name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.name in hints:
            kinds[param.name] = hints[param.name]
        elif param.default is not param.empty and param.default is not None:
            kinds[param.name] = _kind_of_default(param.default, f"{name}.{param.name}")
        elif not strict:
            kinds[param.name] = Any
        else:
            raise TypeError(f"{name}.{param.name}: annotate this argument (no default to take its kind from)")
    return kinds


@functools.lru_cache(maxsize=None)
def argument_kinds(cls):
    """{argument: kind} of a class's constructor: the annotation, else the default's type (a tuple of
    numbers: that many numbers). TypeError for an argument whose kind follows from neither. The dict
    is shared: do not change it."""
    return _parameter_kinds(cls.__init__, cls.__name__)


def required_arguments(cls):
    """The constructor arguments without a default."""
    return [p.name for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_arguments(cls, values, where=""):
    """Check the values (a dict, e.g. a config section or a constructor's locals()) of cls's constructor
    arguments against their kinds and cls.LIMITS; other keys are left alone. ConfigError (a ValueError)
    naming `where` + the argument."""
    kinds, limits = argument_kinds(cls), getattr(cls, "LIMITS", {})
    for name, kind in kinds.items():
        if name in values:
            check_value(values[name], kind, limits.get(name), f"{where}{name}")


def keyed(where, message, cls):
    """'<where>.<argument>: rest' for a constructor's message that starts with '<argument>: ' (one of cls's
    arguments), else '<where>: message': so a constructor's own error names the key it concerns."""
    head, sep, rest = message.partition(": ")
    if sep and head in inspect.signature(cls.__init__).parameters:
        return f"{where}.{head}: {rest}"
    return f"{where}: {message}"
