"""Configuration: YAML files with one optional `base:` level, dotted overrides, strict validation.

- `base: other.yaml` (relative to the file) is loaded first; dicts merge deeply, lists and scalars
  are replaced. A base may not have a base of its own.
- Overrides `a.b.c=value` (list items by index: `losses.0.weight=0.5`) are parsed as YAML values; a value
  that is not printable text (a path with bytes that are not UTF-8, a newline) is the string it is.
- The resolved config is written as YAML (`dump_config`); a string that YAML cannot hold (a path with
  bytes that are not UTF-8, held as surrogates) is written as `!fsname "<text>"`, its surrogates as
  \\uDCNN and its backslashes doubled, which read_yaml reads back as the same string.
- Numbers such as `2e-4` are floats (plain YAML 1.1 would read them as strings). A key given twice
  in one mapping is an error naming the file and both lines (read_yaml reads every config YAML: a
  config file, its base, a sweep's --with file).
- Every key is checked against the schema below, with its kind and limits (hdm.kinds: numbers finite
  and within meaningful ranges). For `type`d sections (model, datasets, losses, the discriminator)
  the valid keys are the constructor arguments of the named class, of the kinds of their defaults
  or annotations and within the class's LIMITS; the constructor, built on the meta device, is the
  backstop. Values that must go together are checked here too (_check_between); values that must
  fit the data in hdm.data.prepare. Unknown keys are errors that name the closest valid keys. The
  fully resolved config (defaults filled in) is what a run saves next to its outputs.
"""
import copy
import difflib
import inspect
import os
from typing import Any, NamedTuple, Tuple

from hdm.device import MEMORY_FORMATS
from hdm.errors import ConfigError, shown
from hdm.kinds import (
    PATH,
    RUN_NAME,
    Keywords,
    OneOf,
    Range,
    argument_kinds,
    brief,
    check_arguments,
    check_value,
    keyed,
    required_arguments,
)
from hdm.optim import OPTIMIZERS, SCHEDULES
from hdm.yaml_io import FS_NAME, dump_config, parse_value, read_yaml  # noqa: F401 - the config's YAML, imported from here


class Field(NamedTuple):
    """One leaf of the schema: its default, its kind and its limit (see hdm.kinds)."""
    default: object
    kind: object = Any
    limit: object = None


class Typed(NamedTuple):
    """A section built from a class table (model, dataset, loss): its keys are the class's arguments."""
    kind: str
    default: object = None


F = Field
COUNT = Range(1)
# SeededSamples seeds torch with (seed * 1_000_003 + epoch) * 10_000_019 + index, which must fit 64 bits
SEED_LIMIT = 2 ** 20
# relative weights of loss terms: 0 or less would drop a term or ascend its gradient; beyond 1e6 one term
# is the only one, and the weighted loss nears float32's range
WEIGHT = Range(0, 1e6, low_open=True)
OPTIMIZER = {"type": F("Adam", str, OneOf(tuple(OPTIMIZERS))),
             "lr": F(2e-4, float, Range(0, 1, low_open=True)),  # Adam's steps are about lr: above 1 they jump
             # moving-average decays of the gradient and its square: 1 would never move (Adam divides by 1 - beta^t)
             "betas": F([0.9, 0.999], Tuple[float, float], Range(0, 1, high_open=True)),
             "weight_decay": F(0.0, float, Range(0, 1))}  # a fraction of the weights taken per step at most
ADVERSARIAL = {"weight": F(1e-3, float, WEIGHT), "optim": OPTIMIZER}
# The one schema: defaults, kinds and limits. `model`, `data.*`, `losses` and `adversarial.discriminator`
# are checked against the constructors of their `type` (hdm.build tables; kinds and LIMITS: hdm.kinds).
SCHEMA = {
    "name": F("run", str, RUN_NAME),  # the run folder is work_dir/name
    "seed": F(0, int, Range(0, SEED_LIMIT, high_open=True)),
    "device": F("auto", str),
    "work_dir": F("runs", str, PATH),
    "model": Typed("model", {"type": "HDM"}),
    "data": {"train": Typed("dataset"), "val": Typed("dataset"),  # val: checkpoint selection (best.pth)
             "test": Typed("dataset")},                           # test: what test.py scores
    "losses": Typed("loss", [{"type": "L1", "weight": 1.0}]),     # a list, each with an optional weight
    "optim": OPTIMIZER,
    # step_size, gamma: type step (gamma above 1 would grow the rate every step_size iterations)
    "schedule": {"type": F("cosine", str, OneOf(tuple(SCHEDULES))), "eta_min": F(0.0, float, Range(0, 1)),
                 "step_size": F(8000, int, COUNT), "gamma": F(0.5, float, Range(0, 1, low_open=True))},
    "adversarial": Typed("adversarial"),  # {discriminator: {type: ...}, weight: ..., optim: {...}} for GAN training
    "train": {"iterations": F(1000, int, COUNT), "batch_size": F(16, int, COUNT),
              "num_workers": F(0, int, Range(0, 256)),  # worker processes: more is a typo, not a machine
              "val_every": F(500, int, COUNT), "save_every": F(500, int, COUNT), "log_every": F(50, int, COUNT),
              "num_val_images": F(3, int, Range(0)), "keep_last": F(3, int, COUNT), "max_nonfinite": F(3, int, COUNT),
              "amp": F("off", str, OneOf(("off", "bf16", "fp16"))),
              "memory_format": F("auto", str, OneOf(MEMORY_FORMATS)),
              "find_unused_parameters": F(False, bool), "select_on_test": F(False, bool),
              # 0: no EMA; 1 would keep the initial weights for ever
              "ema_decay": F(0.0, float, Range(0, 1, high_open=True))},
    "eval": {"preset": F("ffa_rgb", str), "options": F({}, dict), "save_images": F(False, bool),
             "grid_images": F(4, int, Range(0))},
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


def _class(section, kind):
    """The class a checked section names."""
    return _table(kind)[section["type"]]


def _argument(section, kind, name):
    """The value a checked section gives its class's argument `name`: its own, or the constructor's default."""
    if name in section:
        return section[name]
    return inspect.signature(_class(section, kind).__init__).parameters[name].default


def _check_typed(section, path, kind, extra=None):
    """A section naming a class of a table: its type, no unknown or missing keys, every argument of the
    kind and within the limits the class states (hdm.kinds.check_arguments). extra: {key: Field} the
    section takes besides the arguments (a loss's weight)."""
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'type' key, got {brief(section)}")
    table, extra = _table(kind), extra or {}
    name = section.get("type")
    if not isinstance(name, str) or name not in table:
        raise ConfigError(f"{path}.type: unknown {kind} type {brief(name)}{_closest(name, table)}")
    cls = table[name]
    kinds = argument_kinds(cls)
    for key, value in section.items():
        if key in extra:
            _check_field(value, extra[key], f"{path}.{key}")
        elif key not in kinds and key != "type":
            raise ConfigError(f"{path}.{key}: not an argument of {kind} {name}{_closest(key, set(kinds) | set(extra))}")
    check_arguments(cls, section, f"{path}.")
    missing = [p for p in required_arguments(cls) if p not in section]
    if missing:
        raise ConfigError(f"{path}: {kind} {name} needs {', '.join(missing)} (missing)")


def _check_field(value, field, path):
    check_value(value, field.kind, field.limit, path)


def _check_schema(cfg, schema, path=""):
    """Unknown keys, kinds and limits of the plain keys; typed sections go to _check_section."""
    for key, value in cfg.items():
        where = f"{path}{key}"
        if key not in schema:
            raise ConfigError(f"{where}: unknown key{_closest(key, schema)}")
        node = schema[key]
        if isinstance(node, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: expected a mapping, got {brief(value)}")
            _check_schema(value, node, where + ".")
        elif isinstance(node, Typed):
            _check_section(value, where, node.kind)
        else:
            _check_field(value, node, where)


def _check_section(value, path, kind):
    if kind == "loss":
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{path}: expected a non-empty list of losses, got {brief(value)}")
        for i, loss in enumerate(value):
            _check_typed(loss, f"{path}.{i}", "loss", extra={"weight": F(1.0, float, WEIGHT)})
    elif kind == "adversarial":
        if value is None:
            return
        if not isinstance(value, dict) or set(value) != {"discriminator", "weight", "optim"}:
            raise ConfigError(f"{path}: expected null or a mapping with discriminator, weight, optim; got {brief(value)}")
        _check_section(value["discriminator"], f"{path}.discriminator", "model")
        _check_schema({k: v for k, v in value.items() if k != "discriminator"}, ADVERSARIAL, f"{path}.")
    elif value is not None or kind == "model":
        _check_typed(value, path, kind)


def check_data_paths(cfg, splits=("train", "val", "test")):
    """ConfigError for a dataset folder of the given data sections that does not exist (run before any
    data is read)."""
    for split in splits:
        section = cfg["data"].get(split)
        for key in PATH_KEYS:
            value = (section or {}).get(key)
            for folder in ([value] if isinstance(value, str) else value or []):
                if not os.path.isdir(folder):
                    raise ConfigError(f"data.{split}.{key}: no such folder {brief(folder)} (datasets/README.md lists "
                                      f"the layout each dataset type expects)")


def check_device(name):
    """ConfigError unless `name` is a device this machine has: auto, cpu, cuda or cuda:<n>."""
    import torch

    try:
        device = torch.device("cpu" if name == "auto" else name)
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"device: {brief(name)} is not a device (auto, cpu, cuda, cuda:<n>)") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {brief(name)}, but CUDA is not available here (device=auto uses it when it is)")
    if device.type not in ("cpu", "cuda") or (device.type == "cpu" and device.index not in (None, 0)):
        raise ConfigError(f"device: {brief(name)} is not supported (auto, cpu, cuda, cuda:<n>)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device: {brief(name)}, but this machine has {torch.cuda.device_count()} CUDA device(s)")


def _check_eval(section):
    """The metric preset exists, and its options are its own, of the kinds of their defaults."""
    from hdm.metrics import METRIC_PRESETS, get_metric

    preset = section["preset"]
    if preset not in METRIC_PRESETS:
        raise ConfigError(f"eval.preset: unknown metric preset {brief(preset)}{_closest(preset, METRIC_PRESETS)}")
    check_value(section["options"], dict, Keywords(METRIC_PRESETS[preset], ("out", "gt", "lq")), "eval.options")
    try:
        get_metric(preset, **section["options"])  # e.g. lpips looks for its weight files
    except (KeyError, ValueError, TypeError, OSError) as err:
        raise ConfigError(f"eval.options: {err.args[0] if err.args else err}") from err


def _check_between(cfg):
    """Constraints between keys whose values are each valid alone (those with the data: hdm.data.prepare)."""
    schedule, gan = cfg["schedule"], cfg["adversarial"]
    for where, optim in [("optim", cfg["optim"])] + ([("adversarial.optim", gan["optim"])] if gan else []):
        if schedule["type"] == "cosine" and schedule["eta_min"] > optim["lr"]:
            raise ConfigError(f"schedule.eta_min: {schedule['eta_min']} is above {where}.lr={optim['lr']}: the cosine "
                              f"schedule would raise the learning rate instead of lowering it")
    batch = cfg["train"]["batch_size"]
    for i, loss in enumerate(cfg["losses"]):
        if loss["type"] == "Contrastive" and _argument(loss, "loss", "negatives") > batch:
            raise ConfigError(f"losses.{i}.negatives: {loss['negatives']} negatives are drawn from the batch: "
                              f"train.batch_size must be at least that, got {batch}")
    if gan and gan["discriminator"]["type"] == "Discriminator":
        channels = _argument(gan["discriminator"], "model", "in_channels")
        if channels != 3:
            raise ConfigError(f"adversarial.discriminator.in_channels: the discriminator sees the model's RGB "
                              f"output: expected 3, got {channels}")


def _check_constructible(section, path, kind):
    """Build the object on the meta device (no memory, no arithmetic): every value its constructor would
    reject is found here, before any folder is created or data read; the message names the argument
    when the constructor's does (hdm.kinds.keyed). VGG losses only look for their weights file there."""
    import torch

    try:
        with torch.device("meta"):
            from hdm.build import build

            build(_table(kind), section, kind)
    except Exception as err:  # noqa: BLE001 - whatever a constructor raises is this section's config error
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(keyed(path, message, _class(section, kind))) from err


def check_losses(cfg):
    """ConfigError for a loss its constructor would reject (e.g. a VGG loss whose weights file is absent)."""
    for i, spec in enumerate(cfg["losses"]):
        spec = {k: v for k, v in spec.items() if k != "weight"}
        _check_constructible(spec, f"losses.{i}", "loss")


def check_training(cfg):
    """ConfigError for what only training needs (testing does not): the losses (check_losses), a model
    with parameters to train."""
    check_losses(cfg)
    import torch

    from hdm.models import build_model

    with torch.device("meta"):
        if not any(p.requires_grad for p in build_model(cfg["model"]).parameters()):
            raise ConfigError(f"model: {cfg['model']['type']} has no parameters to train; score it with hdm-test")


def resolve(cfg):
    """The config over the defaults (a new dict): a section an override replaced whole, or an
    adversarial optimizer that names only some of its keys, gets the others' defaults."""
    out = merge(DEFAULTS, cfg)
    gan = out.get("adversarial")
    if isinstance(gan, dict) and isinstance(gan.get("optim"), dict):
        gan["optim"] = merge(_defaults(OPTIMIZER), gan["optim"])
    return out


def validate(cfg):
    """The config over the defaults (resolve), or ConfigError naming the key on any unknown key, value
    not of its kind or outside its limits, constructor argument a model would reject, or values that
    do not go together."""
    cfg = resolve(cfg)
    _check_schema(cfg, SCHEMA)
    check_device(cfg["device"])
    _check_eval(cfg["eval"])
    _check_between(cfg)
    _check_constructible(cfg["model"], "model", "model")
    if cfg["adversarial"]:
        _check_constructible(cfg["adversarial"]["discriminator"], "adversarial.discriminator", "model")
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


def base_path(path, base):
    """The path of the base config that `base:` of the config file `path` names (beside it), None when it
    names none."""
    if base is None:
        return None
    if not isinstance(base, str) or not base or "\0" in base:
        raise ConfigError(f"{shown(path)}: base: expected the path of a config file, got {brief(base)}")
    return os.path.join(os.path.dirname(os.path.abspath(path)), base)


def config_files(path):
    """The files a config file is read from: itself and the base it names."""
    base = base_path(path, read_yaml(path).get("base"))
    return [path] + ([base] if base else [])


def load_file(path):
    """A config file merged over its `base:` (one level)."""
    cfg = read_yaml(path)
    base_file = base_path(path, cfg.pop("base", None))
    if base_file is None:
        return cfg
    base = read_yaml(base_file)
    if "base" in base:
        raise ConfigError(f"{shown(base_file)}: a base config may not have a base of its own (one level only)")
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
            if not (key.isascii() and key.isdigit()) or int(key) >= len(node):
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
    if not isinstance(new_type, str) or new_type not in table:
        return  # validation names the unknown type
    valid = set(inspect.signature(table[new_type].__init__).parameters) | ({"weight"} if kind == "loss" else set())
    for key in [k for k in section if k not in valid and k != "type"]:
        del section[key]


def load_config(path, overrides=(), extra=None):
    """Defaults <- file (<- its base) <- extra (a dict, e.g. a sweep's shared settings) <- overrides,
    validated (with the defaults of anything an override replaced). Returns a plain dict."""
    cfg = merge(DEFAULTS, load_file(path))
    if extra:
        cfg = merge(cfg, extra)
    for text in overrides:
        apply_override(cfg, text)
    return validate(cfg)
