"""Models for the tools that restore, score or export (hdm-predict, hdm-test, hdm-export, hdm-serve, the
scripts): a config file or the config stored in a checkpoint, dotted overrides, the weights; every
problem one UsageError or ConfigError naming the file or the option."""
import copy

from hdm.checkpoint import load_checkpoint, stored_run_config
from hdm.cli import UsageError, first_line
from hdm.config import DEFAULTS, ConfigError, apply_override, load_config, merge, validate
from hdm.errors import shown
from hdm.inference import load_model


def run_config(cfg_path, weights, overrides=()):
    """The whole config of a config file, or, without one, the config stored in the checkpoint
    (train.py stores the run's config; converted release weights their model), with dotted overrides."""
    if cfg_path:
        return load_config(cfg_path, overrides)
    try:
        ckpt = load_checkpoint(weights)
    except (OSError, RuntimeError) as err:
        line = first_line(err)  # names the file (hdm-serve and torch.hub have no --weights option)
        raise UsageError(line if shown(weights) in line else f"{shown(weights)}: {line}") from err
    stored = stored_run_config(ckpt)
    if stored is None:
        raise UsageError(f"{weights}: holds no config; give -c CONFIG")
    cfg = merge(DEFAULTS, copy.deepcopy(stored))
    for text in overrides:
        apply_override(cfg, text)
    return validate(cfg)


def load_weights(model_cfg, weights, device, option="--weights"):
    """load_model for a tool's option: a missing or unreadable file, or weights that do not fit the
    config's model, are one UsageError naming the option (found before any work)."""
    try:
        return load_model(model_cfg, weights, device)
    except (ValueError, OSError, RuntimeError) as err:
        raise UsageError(f"{option}: {first_line(err)}") from err


def load_one(cfg_path, weights, device, overrides=(), fmt="auto"):
    """(model ready for inference (image input only), its whole config) of a config path or None and a
    weights path or None."""
    source = shown(cfg_path or weights)
    try:
        cfg = run_config(cfg_path, weights, overrides)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from err
    except (ValueError, OSError, RuntimeError) as err:
        raise UsageError(f"{source}: {first_line(err)}") from err
    try:
        model = load_model(cfg["model"], weights, device, fmt)
    except (ValueError, OSError, RuntimeError) as err:  # a message about weights names their file
        raise UsageError(first_line(err) if weights else f"{source}: {first_line(err)}") from err
    if model.extra_inputs:
        raise UsageError(f"{source}: the model needs {model.extra_inputs} besides the image; only the "
                         f"image can be given here")
    return model, cfg


def load_models(specs, device, overrides=(), fmt="auto"):
    """[(config path or None, weights path or None)] -> models ready for inference (image input only)."""
    return [load_one(cfg_path, weights, device, overrides, fmt)[0] for cfg_path, weights in specs]
