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

import yaml

from hdm.device import MEMORY_FORMATS

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


class ConfigError(ValueError):
    """A config problem; the message names the key path."""


def parse_value(text, where="override"):
    """A command-line value as YAML (numbers, booleans, lists, null; anything else a string)."""
    try:
        return yaml.load(text, Loader=_Loader) if text.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: {text!r} is not a valid YAML value ({str(err).splitlines()[0]}); quote it "
                          f"as a string or close its brackets") from err


# ----- schema -----

DEFAULTS = {
    "name": "run",
    "seed": 0,
    "device": "auto",
    "work_dir": "runs",
    "model": {"type": "HDM"},
    "data": {"train": None, "val": None, "test": None},  # val: checkpoint selection; test: what test.py scores
    "losses": [{"type": "L1", "weight": 1.0}],
    "optim": {"type": "Adam", "lr": 2e-4, "betas": [0.9, 0.999], "weight_decay": 0.0},
    "schedule": {"type": "cosine", "eta_min": 0.0, "step_size": 8000, "gamma": 0.5},  # step_size, gamma: type step
    "adversarial": None,  # {discriminator: {type: ...}, weight: ..., optim: {...}} for GAN training
    "train": {"iterations": 1000, "batch_size": 16, "num_workers": 0, "val_every": 500, "save_every": 500,
              "log_every": 50, "num_val_images": 3, "keep_last": 3, "max_nonfinite": 3, "amp": "off",
              "memory_format": "auto", "find_unused_parameters": False, "select_on_test": False, "ema_decay": 0.0},
    "eval": {"preset": "ffa_rgb", "options": {}, "save_images": False, "grid_images": 4},
}

# leaf types (int values are accepted where float is expected); None means any value
TYPES = {
    "name": str, "seed": int, "device": str, "work_dir": str,
    "optim": {"type": str, "lr": float, "betas": list, "weight_decay": float},
    "schedule": {"type": str, "eta_min": float, "step_size": int, "gamma": float},
    "train": {"iterations": int, "batch_size": int, "num_workers": int, "val_every": int, "save_every": int,
              "log_every": int, "num_val_images": int, "keep_last": int, "max_nonfinite": int, "amp": str,
              "memory_format": str, "find_unused_parameters": bool, "select_on_test": bool, "ema_decay": float},
    "eval": {"preset": str, "options": dict, "save_images": bool, "grid_images": int},
}


# value ranges: key path -> (lowest allowed, whether the lowest itself is allowed)
RANGES = {
    "seed": (0, True), "optim.lr": (0, False), "optim.weight_decay": (0, True), "schedule.eta_min": (0, True),
    "schedule.step_size": (1, True), "schedule.gamma": (0, False), "train.iterations": (1, True),
    "train.batch_size": (1, True), "train.num_workers": (0, True), "train.val_every": (1, True),
    "train.save_every": (1, True), "train.log_every": (1, True), "train.num_val_images": (0, True),
    "train.keep_last": (1, True), "train.max_nonfinite": (1, True), "eval.grid_images": (0, True),
    "train.ema_decay": (0, True),
}
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


def _check_types(cfg, types, path):
    for key, value in cfg.items():
        if key not in types:
            raise ConfigError(f"{path}{key}: unknown key{_closest(key, types)}")
        want = types[key]
        if isinstance(want, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{path}{key}: expected a mapping, got {value!r}")
            _check_types(value, want, f"{path}{key}.")
        elif want is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{path}{key}: expected a number, got {value!r}")
        elif want is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{path}{key}: expected an integer, got {value!r}")
        elif not isinstance(value, want):
            raise ConfigError(f"{path}{key}: expected {want.__name__}, got {value!r}")


def _check_ranges(cfg):
    for path, (low, inclusive) in RANGES.items():
        section, _, key = path.rpartition(".")
        value = cfg[section][key] if section else cfg[key]
        if value < low or (value == low and not inclusive):
            raise ConfigError(f"{path}: must be {'>=' if inclusive else '>'} {low}, got {value}")


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
    """Raise ConfigError on any unknown key, wrongly typed value, or value out of range."""
    for key in cfg:
        if key not in DEFAULTS:
            raise ConfigError(f"{key}: unknown top-level key{_closest(key, DEFAULTS)}")
    _check_types({k: v for k, v in cfg.items() if k in TYPES}, TYPES, "")
    _check_ranges(cfg)
    if cfg["train"]["amp"] not in ("off", "bf16", "fp16"):
        raise ConfigError(f"train.amp: {cfg['train']['amp']!r} is not one of off, bf16, fp16")
    if cfg["train"]["ema_decay"] >= 1:
        raise ConfigError(f"train.ema_decay: must be < 1 (0 turns the EMA off), got {cfg['train']['ema_decay']}")
    from hdm.optim import OPTIMIZERS, SCHEDULES

    for path, section in (("optim", cfg["optim"]), ("adversarial.optim", (cfg["adversarial"] or {}).get("optim"))):
        if section is not None and section.get("type") not in OPTIMIZERS:
            name = section.get("type")
            raise ConfigError(f"{path}.type: unknown optimizer {name!r}{_closest(name, OPTIMIZERS)}")
    if cfg["schedule"]["type"] not in SCHEDULES:
        name = cfg["schedule"]["type"]
        raise ConfigError(f"schedule.type: unknown schedule {name!r}{_closest(name, SCHEDULES)}")
    if cfg["train"]["memory_format"] not in MEMORY_FORMATS:
        raise ConfigError(f"train.memory_format: {cfg['train']['memory_format']!r} is not one of {', '.join(MEMORY_FORMATS)}")
    _check_device(cfg["device"])
    _check_typed(cfg["model"], "model", "model")
    _check_constructible(cfg["model"], "model", "model")
    gan = cfg["adversarial"]
    if gan is not None:
        if not isinstance(gan, dict) or set(gan) != {"discriminator", "weight", "optim"}:
            raise ConfigError(f"adversarial: expected null or a mapping with discriminator, weight, optim; got {gan!r}")
        _check_typed(gan["discriminator"], "adversarial.discriminator", "model")
        _check_constructible(gan["discriminator"], "adversarial.discriminator", "model")
        _check_types({"weight": gan["weight"], "optim": gan["optim"]},
                     {"weight": float, "optim": TYPES["optim"]}, "adversarial.")
    data = cfg["data"]
    if not isinstance(data, dict):
        raise ConfigError(f"data: expected a mapping with train/val datasets, got {data!r}")
    for key, section in data.items():
        if key not in DEFAULTS["data"]:
            raise ConfigError(f"data.{key}: unknown key{_closest(key, DEFAULTS['data'])}")
        if section is not None:
            _check_typed(section, f"data.{key}", "dataset")
    from hdm.metrics import get_metric

    try:
        get_metric(cfg["eval"]["preset"], **cfg["eval"]["options"])
    except (KeyError, ValueError) as err:
        raise ConfigError(f"eval: {err.args[0]}") from err
    if not isinstance(cfg["losses"], list) or not cfg["losses"]:
        raise ConfigError(f"losses: expected a non-empty list, got {cfg['losses']!r}")
    for i, loss in enumerate(cfg["losses"]):
        _check_typed(loss, f"losses.{i}", "loss", extra=("weight",))
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
