"""Building objects from config dicts through the explicit `{name: class}` tables of each package."""
import copy


def build(table, cfg, kind):
    """table[cfg['type']](**rest of cfg); the dict is not modified; a wrong name lists the valid ones."""
    cfg = copy.deepcopy(dict(cfg))
    name = cfg.pop("type", None)
    if name not in table:
        raise KeyError(f"unknown {kind} type {name!r}; valid: {', '.join(table)}")
    return table[name](**cfg)
