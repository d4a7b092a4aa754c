"""YAML as configs read and write it (hdm.config): numbers such as 2e-4 read as floats, a key named twice
refused, strings YAML cannot hold as text written as !fsname, one reader (`read_yaml`) for every config
file, and the override values' parser (`parse_value`)."""
import collections.abc
import io
import re

import yaml

from hdm.errors import ConfigError, shown
from hdm.files import open_input
from hdm.kinds import brief

# ----- YAML with numbers such as 2e-4 read as floats -----


class DuplicateKey(yaml.YAMLError):
    """A mapping that names a key twice (plain YAML keeps the last silently)."""

    def __init__(self, key, first, second):
        where = f"at line {first} and line {second}" if first != second else f"twice on line {first}"
        super().__init__(f"key {brief(key)} is given {where}; keep one")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when PyYAML has it (faster)
    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, collections.abc.Hashable) and key in seen:
                raise DuplicateKey(key, seen[key], line)
            if isinstance(key, collections.abc.Hashable):
                seen[key] = line
        return super().construct_mapping(node, deep)


_FLOAT = re.compile(r"""^(?:
     [-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?   # 1.5, 1., 1.5e-3
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+                 # 2e-4 (a string in plain YAML 1.1)
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?               # .5
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
FS_NAME = "!fsname"  # a string YAML cannot hold as text (see the module doc)
_FS_ESCAPE = re.compile(r"\\(\\|u[0-9a-fA-F]{4})")


class _Dumper(yaml.SafeDumper):
    """yaml.safe_dump's dumper, but a string with surrogates (a file name's bytes that are not UTF-8) is
    written as !fsname (libyaml refuses them in plain text)."""


def _represent_str(dumper, text):
    if not any("\ud800" <= c <= "\udfff" for c in text):
        return dumper.represent_str(text)
    escaped = "".join("\\\\" if c == "\\" else f"\\u{ord(c):04x}" if "\ud800" <= c <= "\udfff" else c for c in text)
    return dumper.represent_scalar(FS_NAME, escaped, style='"')


def _construct_fs_name(loader, node):
    return _FS_ESCAPE.sub(lambda m: "\\" if m.group(1) == "\\" else chr(int(m.group(1)[1:], 16)),
                          loader.construct_scalar(node))


_Dumper.add_representer(str, _represent_str)
_Loader.add_constructor(FS_NAME, _construct_fs_name)


def parse_value(text, where="override"):
    """A command-line value as YAML (numbers, booleans, lists, null; anything else a string). Text that is
    not printable (bytes of a file name that are not UTF-8, a newline, control characters) never reaches
    the YAML parser: it is the string it is (a path), not what YAML would make of it."""
    if not text.isprintable():
        return text
    try:
        return yaml.load(text, Loader=_Loader) if text.strip() else ""
    except DuplicateKey as err:
        raise ConfigError(f"{where}: {err}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: {text!r} is not a valid YAML value ({str(err).splitlines()[0]}); quote it "
                          f"as a string or close its brackets") from err


# ----- schema -----


def read_yaml(path):
    """A YAML mapping read as config (a config file, its base, a sweep's shared settings): ConfigError
    naming the file when it is missing, not UTF-8, not YAML, not a mapping, or names a key twice."""
    try:
        with open_input(path, "config file") as f:
            cfg = yaml.load(io.TextIOWrapper(f, encoding="utf-8"), Loader=_Loader) or {}
    except OSError as err:
        raise ConfigError(str(err)) from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{shown(path)}: not UTF-8 text (byte {err.start}); save it as UTF-8") from err
    except DuplicateKey as err:
        raise ConfigError(f"{shown(path)}: {err}") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{shown(path)}: not valid YAML{where} ({getattr(err, 'problem', None) or 'parse error'})"
                          ) from err
    if not isinstance(cfg, dict):
        raise ConfigError(f"{shown(path)}: expected a mapping at the top level")
    return cfg


def dump_config(cfg, path, notes=()):
    """Write the resolved config as YAML (safe_dump's, with !fsname for strings YAML cannot hold), after
    `notes` as comment lines at its top (what ran where it differs from what the config asks)."""
    from hdm.files import atomic_write

    with atomic_write(path, "w") as f:
        f.write("".join(f"# {note}\n" for note in notes))
        yaml.dump(cfg, f, Dumper=_Dumper, sort_keys=False)
