"""Configuration: YAML files with one optional `base:` level, dotted overrides, strict validation.

- `base: other.yaml` (relative to the file) is loaded first; dicts merge deeply, lists and scalars
  are replaced. A base may not have a base of its own.
- Overrides `a.b.c=value` (list items by index: `losses.0.weight=0.5`) are parsed as YAML values.
- Numbers such as `2e-4` are floats (plain YAML 1.1 would read them as strings).
- Every key is checked against the schema below; for `type`d sections (model, datasets, losses) the
  valid keys are the constructor arguments of the named class. Unknown keys are errors that name
  the closest valid keys. The fully resolved config is what a run saves next to its outputs.
"""
import copy
import difflib
import inspect
import os
import re
from typing import NamedTuple, Optional

import yaml

from hdm.device import MEMORY_FORMATS
from hdm.errors import ConfigError
from hdm.optim import OPTIMIZERS, SCHEDULES

# ----- YAML with numbers such as 2e-4 read as floats -----


class _Loader(yaml.SafeLoader):
    pass


_FLOAT = re.compile(r"""^(?:
     [-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?   # 1.5, 1., 1.5e-3
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+                 # 2e-4 (a string in plain YAML 1.1)
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?               # .5
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def parse_value(text, where="override"):
    """A command-line value as YAML (numbers, booleans, lists, null; anything else a string)."""
    try:
        return yaml.load(text, Loader=_Loader) if text.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: {text!r} is not a valid YAML value ({str(err).splitlines()[0]}); quote it "
                          f"as a string or close its brackets") from err


# ----- schema -----


class Field(NamedTuple):
    """One leaf of the schema: its default, its type (int values are accepted where float is expected;
    None: any), its allowed range (low, whether low itself is allowed; high, excluded) and choices."""
    default: object
    kind: Optional[type] = None
    low: Optional[float] = None
    low_allowed: bool = True
    high: Optional[float] = None
    choices: Optional[tuple] = None


class Typed(NamedTuple):
    """A section built from a class table (model, dataset, loss): its keys are the class's arguments."""
    kind: str
    default: object = None


F = Field
OPTIMIZER = {"type": F("Adam", str, choices=tuple(OPTIMIZERS)), "lr": F(2e-4, float, 0, False),
             "betas": F([0.9, 0.999], list), "weight_decay": F(0.0, float, 0)}
# The one schema: defaults, types, ranges and choices. `model`, `data.*`, `losses` and
# `adversarial.discriminator` are checked against the constructors of their `type` (hdm.build tables).
SCHEMA = {
    "name": F("run", str),
    "seed": F(0, int, 0),
    "device": F("auto", str),
    "work_dir": F("runs", str),
    "model": Typed("model", {"type": "HDM"}),
    "data": {"train": Typed("dataset"), "val": Typed("dataset"),  # val: checkpoint selection (best.pth)
             "test": Typed("dataset")},                           # test: what test.py scores
    "losses": Typed("loss", [{"type": "L1", "weight": 1.0}]),     # a list, each with an optional weight
    "optim": OPTIMIZER,
    "schedule": {"type": F("cosine", str, choices=tuple(SCHEDULES)), "eta_min": F(0.0, float, 0),
                 "step_size": F(8000, int, 1), "gamma": F(0.5, float, 0, False)},  # step_size, gamma: type step
    "adversarial": Typed("adversarial"),  # {discriminator: {type: ...}, weight: ..., optim: {...}} for GAN training
    "train": {"iterations": F(1000, int, 1), "batch_size": F(16, int, 1), "num_workers": F(0, int, 0),
              "val_every": F(500, int, 1), "save_every": F(500, int, 1), "log_every": F(50, int, 1),
              "num_val_images": F(3, int, 0), "keep_last": F(3, int, 1), "max_nonfinite": F(3, int, 1),
              "amp": F("off", str, choices=("off", "bf16", "fp16")),
              "memory_format": F("auto", str, choices=MEMORY_FORMATS),
              "find_unused_parameters": F(False, bool), "select_on_test": F(False, bool),
              "ema_decay": F(0.0, float, 0, True, 1.0)},  # 0: no EMA
    "eval": {"preset": F("ffa_rgb", str), "options": F({}, dict), "save_images": F(False, bool),
             "grid_images": F(4, int, 0)},
}


def _defaults(node):
    if isinstance(node, dict):
        return {key: _defaults(value) for key, value in node.items()}
    return copy.deepcopy(node.default)


DEFAULTS = _defaults(SCHEMA)


# dataset arguments that name folders (checked by check_data_paths before any data is read)
PATH_KEYS = ("root", "lq_dir", "gt_dir", "trans_dir")


def _closest(word, choices):
    near = difflib.get_close_matches(str(word), [str(c) for c in choices], n=3, cutoff=0.5)
    return f"; did you mean {' or '.join(near)}?" if near else f"; valid keys: {', '.join(sorted(map(str, choices)))}"


def _table(kind):
    # imported here: the tables import torch models, and config is imported by everything
    if kind == "model":
        from hdm.models import MODELS as table
    elif kind == "dataset":
        from hdm.data import DATASETS as table
    else:
        from hdm.losses import LOSSES as table
    return table


def _check_typed(section, path, kind, extra=()):
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'type' key, got {section!r}")
    table = _table(kind)
    name = section.get("type")
    if name not in table:
        raise ConfigError(f"{path}.type: unknown {kind} type {name!r}{_closest(name, table)}")
    params = inspect.signature(table[name].__init__).parameters
    valid = {p for p in params if p != "self"} | {"type"} | set(extra)
    for key in section:
        if key not in valid:
            raise ConfigError(f"{path}.{key}: not an argument of {kind} {name}{_closest(key, valid)}")
    required = [p for p, v in params.items() if p != "self" and v.default is inspect.Parameter.empty
                and v.kind is v.POSITIONAL_OR_KEYWORD]
    missing = [p for p in required if p not in section]
    if missing:
        raise ConfigError(f"{path}: {kind} {name} needs {', '.join(missing)} (missing)")


def _check_field(value, field, path):
    kind = field.kind
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if kind not in (None, int, float) and not isinstance(value, kind):
        raise ConfigError(f"{path}: expected {kind.__name__}, got {value!r}")
    if field.choices is not None and value not in field.choices:
        near = difflib.get_close_matches(str(value), field.choices, n=1, cutoff=0.5)
        raise ConfigError(f"{path}: {value!r} is not one of {', '.join(field.choices)}"
                          f"{f'; did you mean {near[0]}?' if near else ''}")
    if field.low is not None and (value < field.low or (value == field.low and not field.low_allowed)):
        raise ConfigError(f"{path}: must be {'>=' if field.low_allowed else '>'} {field.low}, got {value}")
    if field.high is not None and value >= field.high:
        raise ConfigError(f"{path}: must be < {field.high}, got {value}")


def _check_schema(cfg, schema, path=""):
    """Unknown keys, types, ranges and choices of the plain keys; typed sections go to _check_section."""
    for key, value in cfg.items():
        where = f"{path}{key}"
        if key not in schema:
            raise ConfigError(f"{where}: unknown key{_closest(key, schema)}")
        node = schema[key]
        if isinstance(node, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: expected a mapping, got {value!r}")
            _check_schema(value, node, where + ".")
        elif isinstance(node, Typed):
            _check_section(value, where, node.kind)
        else:
            _check_field(value, node, where)


def _check_section(value, path, kind):
    if kind == "loss":
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{path}: expected a non-empty list, got {value!r}")
        for i, loss in enumerate(value):
            _check_typed(loss, f"{path}.{i}", "loss", extra=("weight",))
            if "weight" in loss:
                _check_field(loss["weight"], F(1.0, float), f"{path}.{i}.weight")
    elif kind == "adversarial":
        if value is None:
            return
        if not isinstance(value, dict) or set(value) != {"discriminator", "weight", "optim"}:
            raise ConfigError(f"{path}: expected null or a mapping with discriminator, weight, optim; got {value!r}")
        _check_section(value["discriminator"], f"{path}.discriminator", "model")
        _check_field(value["weight"], F(1e-3, float, 0), f"{path}.weight")
        _check_schema(value["optim"], OPTIMIZER, f"{path}.optim.")
    elif value is not None or kind == "model":
        _check_typed(value, path, kind)
        if kind == "model":
            _check_constructible(value, path, kind)


def check_data_paths(cfg, splits=("train", "val", "test")):
    """ConfigError for a dataset folder of the given data sections that does not exist (run before any
    data is read)."""
    for split in splits:
        section = cfg["data"].get(split)
        for key in PATH_KEYS:
            value = (section or {}).get(key)
            for folder in ([value] if isinstance(value, str) else value or []):
                if not os.path.isdir(folder):
                    raise ConfigError(f"data.{split}.{key}: no such folder {folder!r} (datasets/README.md lists "
                                      f"the layout each dataset type expects)")


def _check_device(name):
    import torch

    try:
        device = torch.device("cpu" if name == "auto" else name)
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"device: {name!r} is not a device (auto, cpu, cuda, cuda:<n>)") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r}, but CUDA is not available here (device=auto uses it when it is)")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device: {name!r} is not supported (auto, cpu, cuda, cuda:<n>)")


def _check_constructible(section, path, kind):
    """Build the object on the meta device (no memory, no arithmetic): every value its constructor would
    reject is found here, before any folder is created or data read. VGG losses only look for their
    weights file there."""
    import torch

    try:
        with torch.device("meta"):
            from hdm.build import build

            build(_table(kind), section, kind)
    except (ValueError, TypeError, KeyError, AssertionError, OSError, RuntimeError) as err:
        raise ConfigError(f"{path}: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}") from err


def check_losses(cfg):
    """ConfigError for a loss its constructor would reject (e.g. a VGG loss whose weights file is absent);
    training calls this before work, testing does not need the losses."""
    for i, spec in enumerate(cfg["losses"]):
        spec = {k: v for k, v in spec.items() if k != "weight"}
        _check_constructible(spec, f"losses.{i}", "loss")


def validate(cfg):
    """Raise ConfigError (naming the key) on any unknown key, wrongly typed value, value out of range or
    not among the choices, or constructor argument a model would reject."""
    _check_schema(cfg, SCHEMA)
    _check_device(cfg["device"])
    from hdm.metrics import get_metric

    try:
        get_metric(cfg["eval"]["preset"], **cfg["eval"]["options"])
    except (KeyError, ValueError, TypeError, OSError) as err:
        raise ConfigError(f"eval: {err.args[0] if err.args else err}") from err
    return cfg


# ----- loading, merging, overrides -----


# sections built from a class table: when their `type` changes, the old class's arguments must go
CLASS_SECTIONS = ("model", "train", "val", "test", "discriminator")


def merge(base, update):
    """Deep merge of dicts (update wins); lists and scalars are replaced, and so is a model or dataset
    section whose `type` changes. Returns a new dict."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        old = out.get(key)
        retyped = key in CLASS_SECTIONS and isinstance(old, dict) and value is not None and \
            isinstance(value, dict) and value.get("type", old.get("type")) != old.get("type")
        if isinstance(value, dict) and isinstance(old, dict) and not retyped:
            out[key] = merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml(path):
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such config file")
    try:
        with open(path, encoding="utf-8") as f:
            cfg = yaml.load(f, Loader=_Loader) or {}
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where} ({getattr(err, 'problem', None) or 'parse error'})") from err
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return cfg


def load_file(path):
    """A config file merged over its `base:` (one level)."""
    cfg = read_yaml(path)
    base_name = cfg.pop("base", None)
    if base_name is None:
        return cfg
    if not isinstance(base_name, str):
        raise ConfigError(f"{path}: base: expected the path of a config file, got {base_name!r}")
    base_path = os.path.join(os.path.dirname(os.path.abspath(path)), base_name)
    base = read_yaml(base_path)
    if "base" in base:
        raise ConfigError(f"{base_path}: a base config may not have a base of its own (one level only)")
    return merge(base, cfg)


def apply_override(cfg, text):
    """Apply one `dotted.path=value` override in place."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key.path=value")
    path, raw = text.split("=", 1)
    keys = path.strip().split(".")
    node = cfg
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        where = ".".join(keys[:depth + 1])
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(f"override {where}: list index out of range (the list has {len(node)} items)")
            key = int(key)
        elif not isinstance(node, dict):
            raise ConfigError(f"override {where}: {'.'.join(keys[:depth])} is not a mapping or list")
        if last:
            value = parse_value(raw, f"override {path.strip()}")
            if key == "type" and isinstance(node, dict) and node.get("type") not in (None, value):
                _retype(node, value, keys)
            node[key] = value
        else:
            if isinstance(node, dict) and node.get(key) is None:
                node[key] = {}
            node = node[key]


def _retype(section, new_type, keys):
    """A section switched to another class by an override keeps only the keys the new class takes
    (e.g. crop and augment when a dataset becomes a PairedFolder); the others belonged to the old one."""
    kind = "model" if keys[0] in ("model", "adversarial") else "dataset" if keys[0] == "data" else "loss"
    table = _table(kind)
    if new_type not in table:
        return  # validation names the unknown type
    valid = set(inspect.signature(table[new_type].__init__).parameters) | ({"weight"} if kind == "loss" else set())
    for key in [k for k in section if k not in valid and k != "type"]:
        del section[key]


def load_config(path, overrides=(), extra=None):
    """Defaults <- file (<- its base) <- extra (a dict, e.g. a sweep's shared settings) <- overrides,
    validated. Returns a plain dict."""
    cfg = merge(DEFAULTS, load_file(path))
    if extra:
        cfg = merge(cfg, extra)
    for text in overrides:
        apply_override(cfg, text)
    return validate(cfg)


def dump_config(cfg, path):
    """Write the resolved config as YAML."""
    from hdm.files import atomic_write

    with atomic_write(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
