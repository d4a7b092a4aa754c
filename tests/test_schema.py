"""The config schema as a contract. Every key of SCHEMA and every constructor argument of the typed
sections of representative configs (the demo configs, and one config per type of each table) is fed
hostile values: each is refused in one line naming the key (exit 2, no traceback, no run folder) or
accepted, and then hdm-train --check passes. Accepted boundary values train; each case of the bad-input
report, duplicate YAML keys, run names and the constraints between keys and with the data are pinned."""
import contextlib
import inspect
import io
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hdm.checkpoint import list_checkpoints
from hdm.cli import console
from hdm.cli import train as train_cli
from hdm.config import SCHEMA, SEED_LIMIT, ConfigError, Field, load_config, load_file, merge, parse_value, read_yaml
from hdm.data import DATASETS
from hdm.data.demo import make_demo
from hdm.image_io import read_image, write_image
from hdm.kinds import argument_kinds, check_arguments, check_value
from hdm.losses import LOSSES
from hdm.models import HDM, MODELS, Discriminator
from tests.helpers import ROOT, marked_image

DEMO = os.path.join(ROOT, "configs", "demo")
# hostile values of every kind: not finite, beyond float32, negative, zero, fractions, empty, wrong types,
# Unicode digits, beyond 32-bit integers, longer than any path
HOSTILE = [math.nan, math.inf, -math.inf, 1e39, -1e39, -1, 0, 0.5, "", "abc", "1", True, False, [], [1, 2],
           {"a": 1}, None, "١٢", "²", "٣.٥", 10 ** 30, -(10 ** 30), 2 ** 31, "x" * 5000]


# ----------------------------------------------------------------------------- data and configs


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The demo sets (haze, rain, low light), the same photos in the RESIDE, NH-HAZE, side-by-side and
    clean-folder layouts, placeholder VGG weight files (only looked for before work) and tiny pairs."""
    root = tmp_path_factory.mktemp("schema_data")
    out = {task: make_demo(task, str(root / task), samples_per_photo=1) for task in ("haze", "rain", "lowlight")}
    haze = out["haze"]
    stems = sorted(os.path.splitext(n)[0] for n in os.listdir(f"{haze}/train/hazy"))
    for folder in ("hazy", "clear", "trans", "numbered"):
        os.makedirs(root / "layouts" / folder)
    for i, stem in enumerate(stems, 1):
        os.symlink(f"{haze}/train/hazy/{stem}.png", root / "layouts" / "hazy" / f"{i}_1.png")
        os.symlink(f"{haze}/train/clear/{stem}.png", root / "layouts" / "clear" / f"{i}.png")
        os.symlink(f"{haze}/train/trans/{stem}.png", root / "layouts" / "trans" / f"{i}_1.png")
        for side, suffix in (("hazy", "hazy"), ("clear", "GT")):  # 1-3 train, 51-53 test (mirrored: other images)
            os.symlink(f"{haze}/train/{side}/{stem}.png", root / "layouts" / "numbered" / f"{i:02d}_{suffix}.png")
            write_image(root / "layouts" / "numbered" / f"{50 + i:02d}_{suffix}.png",
                        read_image(f"{haze}/train/{side}/{stem}.png")[:, ::-1])
        halves = [read_image(f"{haze}/train/{side}/{stem}.png")[:160, :160] for side in ("hazy", "clear")]
        write_image(root / "layouts" / "side" / f"{i}.png", np.concatenate(halves, axis=1))
    out["layouts"] = str(root / "layouts")
    for arch in ("vgg16", "vgg19"):
        (root / f"{arch}.pth").write_bytes(b"")
        out[arch] = str(root / f"{arch}.pth")
    for i in range(3):
        for side in ("lq", "gt"):
            marked_image(root / "tiny" / "train" / side / f"{i}.png", size=(24, 28))
    out["tiny"] = str(root / "tiny")
    return out


def paired(root, split):
    return {"lq_dir": f"{root}/{split}/hazy", "gt_dir": f"{root}/{split}/clear"}


def representative(data):
    """{name: (config dict, key prefixes to walk)}: the demo configs on the synthesised data (batch 2: three
    training photos) and one config per dataset, model and loss type the demo configs leave out. Where
    the model is not what is walked, it is a small HDM (the checks of accepted values build it)."""
    haze, lay = data["haze"], data["layouts"]

    def demo(name, **changes):
        return merge(load_file(os.path.join(DEMO, name + ".yaml")), {"train": {"batch_size": 2}, **changes})
    haze_data = {"train": paired(haze, "train"), "val": paired(haze, "val")}
    low = data["lowlight"]
    low_data = {"train": {"root": low}, "val": {"root": low}}
    small = {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1}
    with_test = {**haze_data, "test": {"type": "ImageFolder", "root": f"{haze}/val/hazy"}}
    return {
        "hdm_demo": (demo("hdm_demo", data=with_test), ["model"]),
        "hdm_demo_small": (demo("hdm_demo", data=with_test, model=small),
                           [*plain_keys(SCHEMA), "data.train", "data.val", "data.test", "losses.0"]),
        "aecrnet_demo": (demo("aecrnet_demo", data=haze_data), ["model"]),
        "dcp_demo": (demo("dcp_demo", data=haze_data), ["model"]),
        "pfdcp_demo": (demo("pfdcp_demo", data=haze_data), ["model"]),
        "hdm_demo_lowlight": (demo("hdm_demo_lowlight", data=low_data, model=small), ["data.train"]),
        "hdm_demo_rain": (demo("hdm_demo_rain", data={"train": {"root": f"{data['rain']}/train"},
                                                     "val": {"root": f"{data['rain']}/val"}}, model=small),
                          ["data.train"]),
        "hybrid_demo_lowlight": (demo("hybrid_demo_lowlight", data=low_data),
                                 ["model", "adversarial.discriminator", "adversarial.weight", "adversarial.optim",
                                  "losses.0"]),
        "reside": (demo("hdm_demo", model=small, data={"train": {"type": "RESIDE", "root": lay, "crop": 96},
                                                       "val": None}), ["data.train"]),
        "numbered": (demo("hdm_demo", model=small, data={"train": {"type": "NumberedHaze", "root": f"{lay}/numbered",
                                                                   "crop": 96},
                                                         "val": {"type": "NumberedHaze", "root": f"{lay}/numbered",
                                                                 "split": "test"}}), ["data.train"]),
        "side_by_side": (demo("hdm_demo", model=small, data={"train": {"type": "SideBySide", "root": f"{lay}/side",
                                                                       "crop": 96}, "val": None}), ["data.train"]),
        "darkened": (demo("hdm_demo", model=small, data={"train": {"type": "DarkenedFolder", "root": f"{haze}/train/clear",
                                                                   "crop": 96}, "val": None}), ["data.train"]),
        "vgg_losses": (demo("hdm_demo", model=small, data=haze_data,
                            losses=[{"type": "L1"}, {"type": "Perceptual", "weight": 0.04, "weights_path": data["vgg16"]},
                                    {"type": "Contrastive", "weight": 0.1, "weights_path": data["vgg19"]}]),
                       ["losses.1", "losses.2"]),
    }


def plain_keys(schema, prefix=""):
    """Every dotted key of the schema's plain leaves."""
    for key, node in schema.items():
        if isinstance(node, dict):
            yield from plain_keys(node, f"{prefix}{key}.")
        elif isinstance(node, Field):
            yield f"{prefix}{key}"


TABLES = {"model": MODELS, "adversarial.discriminator": MODELS, "data.": DATASETS, "losses.": LOSSES}


def section_keys(cfg, prefix):
    """The keys to walk under a prefix of a config: a typed section's type and every argument of its
    class (a loss's weight too), every key of a plain mapping, or a plain key itself."""
    node = cfg
    for part in prefix.split("."):
        node = node[int(part)] if isinstance(node, list) else node.get(part)
    table = next((t for p, t in TABLES.items() if prefix.startswith(p)), None)
    if table is not None:
        extra = ["weight"] if prefix.startswith("losses.") else []
        return [f"{prefix}.{key}" for key in ["type", *argument_kinds(table[node["type"]]), *extra]]
    return [f"{prefix}.{key}" for key in node] if isinstance(node, dict) else [prefix]  # a plain key, set or not


def types_of(cfg):
    """The class names a config's typed sections use."""
    gan = cfg.get("adversarial") or {}
    sections = [cfg["model"], *cfg["data"].values(), *cfg["losses"], gan.get("discriminator")]
    return {section["type"] for section in sections if section}


@pytest.fixture(scope="module")
def configs(data, tmp_path_factory):
    """{name: (path of the written config, its work_dir, keys to walk)}."""
    folder = tmp_path_factory.mktemp("schema_configs")
    out = {}
    for name, (cfg, prefixes) in representative(data).items():
        cfg = {**cfg, "name": name, "work_dir": str(folder / "runs" / name)}
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        keys = [key for prefix in prefixes for key in section_keys(cfg, prefix)]
        out[name] = (str(path), cfg["work_dir"], keys)
    return out


# ----------------------------------------------------------------------------- running the tool


def as_override(key, value):
    """key=<value as YAML>, checked to read back as the same value."""
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf).strip()
    text = text[:-len("...")].strip() if text.endswith("...") else text
    back = parse_value(text)
    assert back == value or (isinstance(value, float) and math.isnan(value) and math.isnan(back)), (value, text)
    return f"{key}={text}"


def check(cfg_path, *args):
    """(exit code, stdout, stderr lines) of hdm-train --check run in-process as from the command line."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            console(train_cli.main, ["-c", cfg_path, *args, "--check"])
        except SystemExit as stop:
            code = stop.code
    return code, out.getvalue(), err.getvalue().strip().splitlines()


def names(line, key):
    """Whether a message names the dotted key (not as part of a longer key)."""
    return re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", line) is not None


def assert_contract(cfg_path, work_dir, key, value, baseline):
    """Refused in one line naming the key (data errors name its data section), or accepted: the tool then
    ends as the config without the value does (baseline: exit code and lines). Nothing is ever written."""
    code, _, err = check(cfg_path, as_override(key, value))
    if (code, err) != baseline:
        assert code == 2 and len(err) == 1, (key, value, code, err)
        section = ".".join(key.split(".")[:2])
        assert names(err[0], key) or (err[0].startswith("data error:") and names(err[0], section)), (key, value, err)
        assert "Traceback" not in err[0]
    assert not os.path.exists(work_dir) or not os.listdir(work_dir), (key, value)


@pytest.fixture(scope="module")
def baselines(configs):
    """{name: (exit code, stderr lines)} of each representative config as it is."""
    out = {}
    for name, (path, work_dir, _) in configs.items():
        code, stdout, err = check(path)
        out[name] = (code, err)
        assert not os.path.exists(work_dir)
    return out


def test_the_representative_configs_pass_the_check(configs, baselines):
    """Every demo config on the demo data passes --check but the parameter-free baselines, refused for
    training in one line; together they name every type of the model, dataset and loss tables."""
    assert {name: code for name, (code, _) in baselines.items()} == {
        name: 2 if name in ("dcp_demo", "pfdcp_demo") else 0 for name in configs}
    assert baselines["dcp_demo"][1] == ["config error: model: DCP has no parameters to train; score it with hdm-test"]
    seen = set().union(*(types_of(read_yaml(path)) for path, _, _ in configs.values()))
    assert seen == set(MODELS) | set(DATASETS) | set(LOSSES)


@pytest.mark.parametrize("name", ["hdm_demo", "hdm_demo_small", "aecrnet_demo", "dcp_demo", "pfdcp_demo",
                                  "hdm_demo_lowlight", "hdm_demo_rain", "hybrid_demo_lowlight", "reside", "numbered",
                                  "side_by_side", "darkened", "vgg_losses"])
def test_every_key_refuses_each_hostile_value_in_one_line_or_accepts_it(configs, baselines, name):
    path, work_dir, keys = configs[name]
    assert keys
    for key in keys:
        for value in HOSTILE:
            assert_contract(path, work_dir, key, value, baselines[name])


def values():
    """Hostile values and any other YAML value: floats of every size (NaN, infinities), integers of every
    size, text of any characters, booleans, null, short lists and mappings."""
    scalars = (st.floats() | st.integers() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
               | st.text(max_size=12) | st.booleans() | st.none())
    return (st.sampled_from(HOSTILE) | scalars | st.lists(scalars, max_size=3)
            | st.dictionaries(st.text(max_size=6), scalars, max_size=2))


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(draw=st.data())
def test_any_value_at_any_key_is_refused_in_one_line_or_accepted(configs, baselines, draw):
    name = draw.draw(st.sampled_from(sorted(configs)))
    path, work_dir, keys = configs[name]
    key = draw.draw(st.sampled_from(keys))
    value = draw.draw(values())
    if key.rsplit(".", 1)[-1] in ("root", "lq_dir", "gt_dir", "trans_dir", "weights_path") and isinstance(value, str):
        value = os.path.join(os.sep, "no such folder", value.lstrip(os.sep))  # existing folders: the data tests
    assert_contract(path, work_dir, key, value, baselines[name])


def test_the_real_command_line_refuses_in_one_line_and_checks_without_writing(configs):
    path, work_dir, _ = configs["hdm_demo"]
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "-c", path, "model.dim=١٢", "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["config error: model.dim: expected an integer in [8, 1024], got '١٢'"]
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "-c", path, "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "" and "check passed; nothing was written" in proc.stdout
    assert "data.train: PairedFolder, 3 samples, crop 96" in proc.stdout and not os.path.exists(work_dir)


# ----------------------------------------------------------------------------- the cases of the report


@pytest.mark.parametrize("override,line", [
    ("model.dim=abc", "model.dim: expected an integer in [8, 1024], got 'abc'"),
    ("optim.lr=.nan", "optim.lr: expected a number in (0, 1], got nan (not a finite number)"),
    ("optim.lr=1e39", "optim.lr: expected a number in (0, 1], got 1e+39 (beyond float32's range)"),
    ("optim.betas=[2,3]", "optim.betas: expected a list of 2 numbers in [0, 1), got [2, 3]"),
    ("train.ema_decay=.nan", "train.ema_decay: expected a number in [0, 1), got nan (not a finite number)"),
    ("losses.0.weight=-1", "losses.0.weight: expected a number in (0, 1e+06], got -1"),
    ("losses.0.weight=0", "losses.0.weight: expected a number in (0, 1e+06], got 0"),
    ("name=''", "name: expected one folder name (not empty, '.', '..' or 'results', without '/', at most 200 bytes), got ''"),
    ("name=../x", "name: expected one folder name (not empty, '.', '..' or 'results', without '/', at most 200 bytes), "
                  "got '../x'"),
    ("work_dir=''", "work_dir: expected a non-empty path, got ''"),
])
def test_the_reported_cases_are_refused_naming_the_key(configs, override, line):
    path, work_dir, _ = configs["hdm_demo"]
    assert check(path, override)[0::2] == (2, [f"config error: {line}"])
    assert not os.path.exists(work_dir)


def test_a_crop_larger_than_the_smallest_image_is_refused_before_work(configs):
    path, work_dir, _ = configs["hdm_demo"]
    code, _, err = check(path, "data.train.crop=401")
    assert code == 2 and len(err) == 1 and err[0].startswith("data error: data.train.crop: 401 is larger than the "
                                                             "smallest image of the set (400x600, ")
    assert check(path, "data.train.crop=400")[0] == 0  # the coffee photo's side itself fits
    assert not os.path.exists(work_dir)


def test_the_discriminator_needs_crops_of_its_minimum_side(configs):
    path, work_dir, _ = configs["hybrid_demo_lowlight"]
    side = Discriminator.MIN_INPUT_SIDE
    assert side == 128  # Table I's input: five stride-2 convs to the last 4 x 4 kernel
    with pytest.raises(ValueError, match="at least 128 x 128"):
        Discriminator(width=1)(torch.zeros(1, 3, side - 1, side))
    assert Discriminator(width=1)(torch.zeros(1, 3, side, side)).shape == (1, 1, 1, 1)
    code, _, err = check(path, f"data.train.crop={side - 1}")
    assert code == 2 and err == [f"data error: adversarial.discriminator: Discriminator takes inputs of at least "
                                 f"{side} x {side}, but data.train.crop is {side - 1}: set data.train.crop to {side} "
                                 f"or more"]
    assert not os.path.exists(work_dir)


def test_the_discriminator_meets_the_smallest_image_without_a_crop(data, tmp_path):
    low = tmp_path / "low"
    for folder in ("our485", "eval15"):
        for side in ("low", "high"):
            for i in range(2):
                marked_image(low / folder / side / f"{i}.png", size=(120, 140))
    cfg = merge(load_file(os.path.join(DEMO, "hybrid_demo_lowlight.yaml")),
                {"work_dir": str(tmp_path / "runs"), "train": {"batch_size": 2},
                 "data": {"train": {"root": str(low), "crop": None}, "val": {"root": str(low)}}})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    code, _, err = check(str(tmp_path / "c.yaml"))
    assert code == 2 and len(err) == 1 and err[0].startswith(
        "data error: adversarial.discriminator: Discriminator takes inputs of at least 128 x 128, but the smallest "
        "image of data.train is 120x140 (")
    assert not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------------- constraints between keys and data


def write_config(folder, data, **changes):
    """A tiny HDM on the tiny pairs (24x28), one iteration, under folder/runs; changes merged over it."""
    tiny = data["tiny"]
    cfg = {"name": "tiny", "work_dir": str(folder / "runs"), "seed": 0,
           "model": {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1},
           "data": {"train": {"type": "PairedFolder", "lq_dir": f"{tiny}/train/lq", "gt_dir": f"{tiny}/train/gt",
                              "crop": 16}, "val": None},
           "train": {"iterations": 1, "batch_size": 2, "save_every": 1, "log_every": 1}}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(merge(cfg, changes)))
    return str(path)


@pytest.mark.parametrize("overrides,line", [
    (["schedule.eta_min=0.01", "optim.lr=0.001"], "config error: schedule.eta_min: 0.01 is above optim.lr=0.001: the "
                                                  "cosine schedule would raise the learning rate instead of lowering it"),
    (["losses=[{{type: Contrastive, negatives: 3}}]"], "config error: losses.0.negatives: 3 negatives are drawn from the "
                                                     "batch: train.batch_size must be at least that, got 2"),
    (["data.train.crop=null", "data.train.lq_dir={odd}/lq", "data.train.gt_dir={odd}/gt"],
     "data error: data.train: images of 2 sizes (e.g. 24x28 and 28x24) cannot be batched: set data.train.crop, or "
     "train.batch_size=1"),
    (["data.train={{type: ImageFolder, root: {tiny}/train/lq}}"], "data error: data.train: ImageFolder has no targets; "
                                                                  "training and validation need pairs"),
    (["model.region=depth"], "data error: data.train: the model reads transmission maps (model.region: depth), which "
                             "PairedFolder does not give here (PairedFolder: trans_dir; RESIDE: trans: true)"),
    (["model={{type: DCP}}"], "config error: model: DCP has no parameters to train; score it with hdm-test"),
    (["data.train.holdout=3"], "data error: data.train.holdout: 3 leaves no training scene: the folder has 3 scenes"),
    (["data.train.take=holdout"], "data error: data.train.take: 'holdout' needs holdout > 0 (the number of scenes "
                                  "set aside)"),
    (["model.dcp_options={{patch: abc}}"], "config error: model.dcp_options.patch: expected an integer, got 'abc'"),
    (["model.dcp_options={{downscale_factor: 2}}"], "config error: model.dcp_options.downscale_factor: not a keyword of "
                                                  "dcp_transmission; valid: patch, omega, atm_radius, atm_eps, "
                                                  "refine_window, refine_eps, resize, bgr_quirk"),
    (["train={{iterations: 1, batch_size: 2}}", "data.train.crop=99"],
     "data error: data.train.crop: 99 is larger than the smallest image of the set (24x28, "),
])
def test_values_that_do_not_go_together_are_refused_before_work(data, tmp_path, overrides, line):
    """Each value valid alone; together, or with the data, one line naming the keys."""
    for side in ("lq", "gt"):  # pairs of two sizes
        marked_image(tmp_path / "odd" / side / "0.png", size=(24, 28))
        marked_image(tmp_path / "odd" / side / "1.png", size=(28, 24))
    overrides = [text.format(tiny=data["tiny"], odd=tmp_path / "odd") for text in overrides]
    code, _, err = check(write_config(tmp_path, data), *overrides)
    assert code == 2 and len(err) == 1 and err[0].startswith(line), err
    assert not (tmp_path / "runs").exists()


def test_a_section_an_override_replaces_keeps_the_other_defaults(data, tmp_path):
    cfg = load_config(write_config(tmp_path, data, adversarial={"discriminator": {"type": "Discriminator"},
                                                                "weight": 1e-3, "optim": {"lr": 1e-3}}),
                      ["optim={lr: 0.01}", "train={iterations: 3}"])
    assert cfg["optim"] == {"type": "Adam", "lr": 0.01, "betas": [0.9, 0.999], "weight_decay": 0.0}
    assert cfg["train"]["iterations"] == 3 and cfg["train"]["batch_size"] == SCHEMA["train"]["batch_size"].default
    assert cfg["adversarial"]["optim"] == {"type": "Adam", "lr": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.0}


# ----------------------------------------------------------------------------- accepted boundaries train


@pytest.mark.parametrize("overrides", [
    ["optim.lr=1", "optim.betas=[0, 0.999999]", "train.ema_decay=0.999999", f"seed={SEED_LIMIT - 1}",
     "data.train.crop=24", "optim.weight_decay=1", "schedule.eta_min=1"],
    ["losses=[{type: L1, weight: 1e-9}, {type: MSE, weight: 1000000}]", "optim.lr=1e-12",
     "schedule.type=step", "schedule.gamma=1", "schedule.step_size=1", "data.train.crop=1", "train.batch_size=3",
     "model.dim=8", "model.num_regions=64", "model.input_std=[1, 1, 1]", "model.input_mean=[0, 1, 0]"],
])
def test_accepted_boundary_values_train(data, tmp_path, overrides):
    path = write_config(tmp_path, data)
    code, _, err = check(path, *overrides)
    assert (code, err) == (0, [])
    run_dir = train_cli.main(["-c", path, *overrides])
    assert [n for n, _ in list_checkpoints(os.path.join(run_dir, "checkpoints"))] == [1]
    state = torch.load(os.path.join(run_dir, "checkpoints", "iter_1.pth"), weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


# ----------------------------------------------------------------------------- --check and the run folder


def test_check_follows_the_run_folder_and_resume_rules_and_writes_nothing(data, tmp_path):
    path = write_config(tmp_path, data)
    run_dir = train_cli.main(["-c", path])
    before = sorted((p, os.path.getmtime(os.path.join(top, p))) for top, _, ps in os.walk(run_dir) for p in ps)
    code, _, err = check(path)
    assert code == 2 and len(err) == 1 and "already holds a run (iter_1.pth)" in err[0]
    code, out, err = check(path, "--resume", "auto", "train.iterations=2")
    assert (code, err) == (0, []) and "resumes from" in out and "iter_1.pth (iteration 1)" in out
    code, _, err = check(path, "--resume", "auto", "optim.lr=0.5")
    assert code == 2 and len(err) == 1 and "differs from the run's in optim.lr" in err[0]
    code, out, err = check(path, "--overwrite")
    assert (code, err) == (0, []) and "would be moved aside" in out
    after = sorted((p, os.path.getmtime(os.path.join(top, p))) for top, _, ps in os.walk(run_dir) for p in ps)
    assert after == before and os.listdir(tmp_path / "runs") == ["tiny"]  # no lock, no log, nothing moved


# ----------------------------------------------------------------------------- YAML, names, kinds


def test_a_duplicate_key_names_the_file_and_both_lines(data, tmp_path):
    (tmp_path / "base.yaml").write_text("name: a\nmodel:\n  type: HDM\n  dim: 8\n  dim: 16\n")
    (tmp_path / "c.yaml").write_text("base: base.yaml\nseed: 1\n")
    with pytest.raises(ConfigError, match=r"base.yaml: key 'dim' is given at line 4 and line 5; keep one"):
        load_config(str(tmp_path / "c.yaml"))
    (tmp_path / "c.yaml").write_text("seed: 1\noptim: {lr: 0.1}\nseed: 2\n")
    code, _, err = check(str(tmp_path / "c.yaml"))
    assert code == 2 and err == [f"config error: {tmp_path}/c.yaml: key 'seed' is given at line 1 and line 3; keep one"]
    (tmp_path / "with.yaml").write_text("train: {iterations: 1, iterations: 2}\n")  # a sweep's --with file
    with pytest.raises(ConfigError, match="with.yaml: key 'iterations' is given twice on line 1"):
        read_yaml(str(tmp_path / "with.yaml"))
    with pytest.raises(ConfigError, match="override losses: key 'type' is given twice on line 1"):
        parse_value("[{type: L1, type: MSE}]", "override losses")


@pytest.mark.parametrize("name,ok", [("run", True), ("a b", True), ("ü-2", True), ("", False), (".", False),
                                     ("..", False), ("a/b", False), ("../x", False), ("/abs", False), ("a\0b", False),
                                     ("x" * 201, False), ("é" * 100, True), ("é" * 101, False), ("results", False),
                                     ("Results", False), ("results2", True)])
def test_run_names_are_one_folder_name_inside_work_dir(data, tmp_path, name, ok):
    path = write_config(tmp_path, data, name=name)
    code, _, err = check(path)
    assert (code == 0) == ok and (ok or (len(err) == 1 and names(err[0], "name")))
    assert not (tmp_path / "runs").exists() and sorted(os.listdir(tmp_path)) == ["tiny.yaml"]


@given(name=st.text(alphabet=st.sampled_from("ab./\\\0 é") | st.characters(), max_size=12))
@settings(max_examples=300, deadline=None, derandomize=True)
def test_a_run_folder_is_always_inside_work_dir(name):
    """Whatever name the schema accepts, work_dir/name is a folder directly inside work_dir."""
    work_dir = os.path.join("runs", "x")
    try:
        check_value(name, SCHEMA["name"].kind, SCHEMA["name"].limit, "name")
    except ConfigError as err:
        assert str(err).startswith("name: expected one folder name")
        return
    folder = os.path.normpath(os.path.join(work_dir, name))
    assert os.path.dirname(folder) == work_dir and os.path.basename(folder) == name


def test_every_constructor_argument_has_a_kind_and_its_default_is_within_its_limits():
    """A new argument needs a default of a clear kind or an annotation (deriving the kinds of every class
    of the tables succeeds), and the limits a class states admit its own defaults."""
    for table in (MODELS, DATASETS, LOSSES):
        for cls in table.values():
            params = inspect.signature(cls.__init__).parameters
            defaults = {name: params[name].default for name in argument_kinds(cls)
                        if params[name].default is not params[name].empty}
            check_arguments(cls, defaults, f"{cls.__name__}.")


def test_constructors_check_their_own_arguments_with_the_same_limits():
    with pytest.raises(ValueError, match=r"^dim: expected an integer in \[8, 1024\], got 'abc'$"):
        HDM(dim="abc")
    with pytest.raises(ValueError, match=r"^stages: expected a string made of the letters P, S, R, got 'PX'$"):
        HDM(stages="PX")
    with pytest.raises(ValueError, match=r"^width: expected an integer in \[1, 256\], got 0$"):
        Discriminator(width=0)


def test_a_backend_that_does_not_load_here_is_refused_before_work(tmp_path, capsys, monkeypatch):
    """model.dcn_backend names a library: one that does not load in this process is a config error before any
    run folder exists (hdm-train, --check too) and before hdm-predict writes anything."""
    from hdm.cli import predict, train
    from hdm.ops import deform_conv

    from .helpers import run_cli

    monkeypatch.setattr(deform_conv, "available_backends", lambda: ["torch"])
    write_image(tmp_path / "in" / "x.png", np.full((8, 8, 3), 0.5))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1},
                                   "work_dir": str(tmp_path / "runs"),
                                   "data": {"train": {"type": "PairedFolder", "lq_dir": str(tmp_path),
                                                      "gt_dir": str(tmp_path)}}}))
    for backend in ("mmcv", "torchvision"):
        for argv in (["-c", str(cfg), f"model.dcn_backend={backend}"], ["-c", str(cfg), f"model.dcn_backend={backend}",
                                                                         "--check"]):
            code, err = run_cli(train.main, argv, capsys)
            assert code == 2 and len(err) == 1 and "model.dcn_backend" in err[0] and "(here: auto, torch)" in err[0]
        code, err = run_cli(predict.main, [str(tmp_path / "in"), str(tmp_path / "out"), "-c", str(cfg),
                                           f"model.dcn_backend={backend}"], capsys)
        assert code == 2 and len(err) == 1 and "model.dcn_backend" in err[0]
    assert not os.path.exists(tmp_path / "runs") and not os.path.exists(tmp_path / "out")
