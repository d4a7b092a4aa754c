"""One run of a sweep: a variant with a seed. `resolve` turns it into a spec (run name, resolved config,
digests), checked like any config before a sweep launches anything; `run_one` trains and tests it in
<out>/<name>/ and writes its result.json, or reuses the result when its config, the code and the data are
those it was computed with.

    <out>/<name>/result.json      the scores, parameters, MACs, times, digests, config of a finished run
    <out>/jobs/<name>.spec.json   the spec a process other than the sweep command runs (Slurm, --jobs)
    <out>/jobs/<name>.state.json  what that process says about itself: running, stopped, failed (with its line), done
"""
import copy
import json
import os
import re
import time

import hdm
from hdm.config import load_config
from hdm.data.prepare import describe, read_checked
from hdm.errors import DataError, Stopped, shown
from hdm.evaluation import summarize, test_split
from hdm.files import HOST, atomic_write
from hdm.models import count_parameters
from hdm.models.complexity import macs
from hdm.pipeline import check_train_and_evaluate, train_and_evaluate
from hdm.results import code_digest, config_digest, provenance, recorded_result
from hdm.run_folder import config_changes, move_aside, stored_config

# the folder holding the package the sweep command imported: its runs' processes import the same code
CODE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(hdm.__file__)))


def python_path():
    """PYTHONPATH for a run's process: CODE_ROOT first, then the caller's own."""
    return os.pathsep.join([CODE_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


def slug(label):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "run"


def resolve(label, path, overrides, extra, seed, out_dir, macs_size, cache, check=True):
    """The spec of one variant and seed: {label, seed, name, config, digests, out_dir, macs_size}, with
    everything its run would refuse found now (hdm.pipeline.check_train_and_evaluate: the config, the data
    it trains on and is scored on, a preset that gives the table's PSNR and SSIM). The digests are those
    of the config, the package's code and the data's content (hdm.identity.set_fingerprint of every data
    section), so a result is reused only for the same three. cache: the data sections already read
    (hdm.data.prepare.read_checked's), each read once per sweep. check=False (--status, --collect, which
    launch nothing) skips the checks, and data that no longer read get a digest that no result has."""
    name = f"{slug(label)}_s{seed}"
    cfg = load_config(path, overrides + [f"seed={seed}", f"name={name}", f"work_dir={out_dir}"], extra=extra)
    if check:
        check_train_and_evaluate(train_config(cfg), test_cfg=cfg, scores=("psnr", "ssim"), cache=cache)
    data = {split: fingerprint(cfg, split, cache, check) for split in ("train", "val", "test") if cfg["data"][split]}
    digests = {"config_digest": config_digest(cfg), "code_digest": code_digest(), "data_digest": config_digest(data)}
    return {"label": label, "seed": seed, "name": name, "config": cfg, "digests": digests, "out_dir": out_dir,
            "macs_size": list(macs_size)}


def fingerprint(cfg, split, cache, check):
    """The content fingerprint of data.<split> (hdm.identity.set_fingerprint); without check, a set that no
    longer reads is 'unreadable: <why>' instead of a DataError."""
    try:
        return describe(read_checked(cfg, split, cache)[0])["fingerprint"]
    except DataError as err:
        if check:
            raise
        return f"unreadable: {err}"


def train_config(cfg):
    """The config a run trains with: without validation when data.val is the set it is scored on (scored
    once, after training)."""
    train_cfg = copy.deepcopy(cfg)
    if test_split(cfg) == "val":
        train_cfg["data"]["val"] = None
    return train_cfg


def result_path(out_dir, name):
    return os.path.join(out_dir, name, "result.json")


def read_result(out_dir, name, digests):
    """The run's result.json when it was computed with these digests (hdm.results.recorded_result)."""
    return recorded_result(result_path(out_dir, name), digests)


def run_one(spec):
    """Train and test one run; returns its result dict, reused when its config, the code and the data
    are those it was computed with. An interrupted run continues from its newest checkpoint."""
    name, cfg, digests, out_dir = spec["name"], spec["config"], spec["digests"], spec["out_dir"]
    run_dir, path = os.path.join(out_dir, name), result_path(out_dir, name)
    result = read_result(out_dir, name, digests)
    if result is not None:
        return {**result, "reused": True}
    if os.path.isfile(path):
        print(f"   {name}: config, code or data changed since its result; running it again", flush=True)
    train_cfg = train_config(cfg)
    stored = stored_config(run_dir)
    if os.path.isfile(path) or (stored and config_changes(stored, train_cfg)[1]):
        moved = move_aside(run_dir)
        print(f"   {shown(name)}: the previous run moved to {shown(moved)}", flush=True)
    model, rows, train_s, test_s = train_and_evaluate(train_cfg, test_cfg=cfg)  # an interrupted run continues
    mean = summarize(rows)
    result = {"label": spec["label"], "seed": spec["seed"], "psnr": mean["psnr"], "ssim": mean["ssim"],
              "input_psnr": mean["input_psnr"], "input_ssim": mean["input_ssim"], "params": count_parameters(model),
              "macs": macs(model, spec["macs_size"]), "macs_size": list(spec["macs_size"]), "images": len(rows),
              "train_s": train_s, "test_s": test_s, "preset": cfg["eval"]["preset"], **digests, "config": cfg,
              "provenance": provenance(cfg["eval"]["preset"], cfg["eval"]["options"])}
    with atomic_write(path, "w") as f:
        json.dump(result, f, indent=1)
    return {**result, "reused": False}


def jobs_dir(out_dir):
    return os.path.join(out_dir, "jobs")


def spec_path(out_dir, name):
    return os.path.join(jobs_dir(out_dir), f"{name}.spec.json")


def state_path(out_dir, name):
    return os.path.join(jobs_dir(out_dir), f"{name}.state.json")


def write_spec(spec):
    path = spec_path(spec["out_dir"], spec["name"])
    with atomic_write(path, "w") as f:
        json.dump(spec, f, indent=1)
    return path


def write_state(out_dir, name, job_id, state, line=""):
    """The run's own account of itself (atomic): {job_id, state, line, host, pid, time}."""
    record = {"job_id": job_id, "state": state, "line": line, "host": HOST, "pid": os.getpid(),
              "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    with atomic_write(state_path(out_dir, name), "w") as f:
        json.dump(record, f)


def write_end(out_dir, name, job_id, err):
    """Record how a run ended without a result: 'stopped' by a signal or Ctrl-C (a checkpoint is saved; the
    next launch continues it), 'failed' otherwise, with the error's one line."""
    from hdm.cli import first_line
    from hdm.engine import StoppedBySignal

    stopped = isinstance(err, (StoppedBySignal, Stopped, KeyboardInterrupt))
    write_state(out_dir, name, job_id, "stopped" if stopped else "failed", first_line(err) if str(err) else type(err).__name__)


def read_state(out_dir, name):
    try:
        with open(state_path(out_dir, name), encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def local_job_id(pid=None):
    """The job id of a run in a local process (this one by default): local:<host>:<pid>."""
    return f"local:{HOST}:{pid or os.getpid()}"
