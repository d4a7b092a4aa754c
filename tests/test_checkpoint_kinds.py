"""Every checkpoint kind works in every tool: iteration, best, with EMA (iteration and best), a GAN run,
converted release weights, a checkpoint written by a stop signal and the last good one after the
weights broke, each through test.py, hdm-predict, torch.hub, hdm-serve, hdm-export's loading and
resume. The checkpoints come from real (tiny) trainings; each tool must restore with the weights
hdm.checkpoint.model_weights names (EMA when a run kept it), checked against a model built by hand
from that entry, and shown to differ from the other entry where a checkpoint has two."""
import base64
import io
import json
import os
import shutil
import signal

import cv2
import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from skimage import data as skimage_data

from hdm.checkpoint import ENTRIES, TRAINING_ENTRIES, load_checkpoint, selection_record
from hdm.cli import predict as predict_cli
from hdm.cli import test as test_cli
from hdm.cli import train as train_cli
from hdm.cli.loading import load_models, load_one
from hdm.config import load_config
from hdm.data import build_dataset
from hdm.engine import StoppedBySignal, TrainingStopped
from hdm.evaluation import evaluate, summarize
from hdm.image_io import read_image, to_uint8, write_image
from hdm.metrics import get_metric
from hdm.models import build_model
from hdm.models.convert import save_converted
from tests.helpers import ROOT, hazy_photo, run_cli

HDM_TINY = {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1}
HYBRID_TINY = {"type": "HybridNet", "width": 4, "ms_channels": 2}


def hdm_config(folder, haze, name, **train):
    return {"name": name, "work_dir": str(folder / "runs"), "seed": 3, "model": HDM_TINY,
            "data": {"train": {"type": "PairedFolder", "lq_dir": f"{haze}/train/hazy", "gt_dir": f"{haze}/train/clear",
                               "crop": 32},
                     "val": {"type": "PairedFolder", "lq_dir": f"{haze}/val/hazy", "gt_dir": f"{haze}/val/clear"},
                     "test": {"type": "PairedFolder", "lq_dir": f"{haze}/val/hazy", "gt_dir": f"{haze}/val/clear"}},
            "optim": {"lr": 1e-2},
            "train": {"iterations": 4, "batch_size": 2, "val_every": 2, "save_every": 2, "log_every": 1, **train}}


def gan_config(folder, lowlight):
    return {"name": "gan", "work_dir": str(folder / "runs"), "seed": 1, "model": HYBRID_TINY,
            "data": {"train": {"type": "LOL", "root": lowlight, "split": "train", "crop": 128},
                     "test": {"type": "LOL", "root": lowlight, "split": "test"}},
            "losses": [{"type": "MSE", "weight": 1.0}],
            "adversarial": {"discriminator": {"type": "Discriminator", "width": 2}, "weight": 1e-3,
                            "optim": {"type": "Adam", "lr": 1e-4, "betas": [0.9, 0.999], "weight_decay": 0.0}},
            "optim": {"lr": 1e-2}, "eval": {"preset": "lol_rgb"},
            "train": {"iterations": 2, "batch_size": 2, "save_every": 2, "log_every": 1}}


def train(folder, cfg):
    path = folder / f"{cfg['name']}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    try:
        train_cli.main(["-c", str(path)])
    except (TrainingStopped, StoppedBySignal):
        pass  # the runs meant to break their weights, or to be stopped by a signal
    return str(path)


def small_data(folder):
    """Small real photos with synthetic haze (PairedFolder layout: train 3 pairs, val 1) and darkened
    (LOL layout, 136 pixels: the discriminator's input needs 128)."""
    haze, lowlight = folder / "haze", folder / "lowlight"
    for split, names, size in (("train", ("astronaut", "coffee", "rocket"), (48, 48)), ("val", ("chelsea",), (40, 56))):
        for name in names:
            hazy, _ = hazy_photo(name, size=size)
            clear = cv2.resize(getattr(skimage_data, name)(), (size[1], size[0]), interpolation=cv2.INTER_AREA)
            write_image(haze / split / "hazy" / f"{name}.png", hazy)
            write_image(haze / split / "clear" / f"{name}.png", clear)
    for split, names in (("our485", ("astronaut", "coffee")), ("eval15", ("chelsea",))):
        for name in names:
            clear = cv2.resize(getattr(skimage_data, name)(), (136, 136), interpolation=cv2.INTER_AREA)
            write_image(lowlight / split / "high" / f"{name}.png", clear)
            write_image(lowlight / split / "low" / f"{name}.png", (clear / 255.0) ** 3)
    return str(haze), str(lowlight)


@pytest.fixture(scope="module")
def kinds(tmp_path_factory):
    """{kind: (checkpoint path, config path, the entry whose weights the tools must use)}."""
    import hdm.engine as engine

    folder = tmp_path_factory.mktemp("kinds")
    haze, lowlight = small_data(folder)
    plain = train(folder, hdm_config(folder, haze, "plain"))
    ema = train(folder, hdm_config(folder, haze, "ema", ema_decay=0.9))
    real_step = engine.train_step
    with pytest.MonkeyPatch.context() as mp:  # a SIGTERM arrives during the third step
        def signalled(state, *args, **kwargs):
            if state.iteration == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            return real_step(state, *args, **kwargs)
        mp.setattr(engine, "train_step", signalled)
        stopped = train(folder, hdm_config(folder, haze, "stopped", iterations=50))
    with pytest.MonkeyPatch.context() as mp:  # the weights break in the third step: iter_4 is never saved
        def breaking(state, *args, **kwargs):
            logs = real_step(state, *args, **kwargs)
            if state.iteration == 2:
                with torch.no_grad():
                    next(state.model.parameters()).fill_(float("nan"))
            return logs
        mp.setattr(engine, "train_step", breaking)
        broken = train(folder, hdm_config(folder, haze, "broken", val_every=100))
    gan = train(folder, gan_config(folder, lowlight))
    torch.manual_seed(5)
    release_cfg = folder / "release.yaml"
    release_cfg.write_text(yaml.safe_dump({**hdm_config(folder, haze, "release"), "model": HDM_TINY}))
    save_converted(build_model(HDM_TINY).state_dict(), HDM_TINY, "hdm_haze_sots.pk", folder / "release.pth")
    runs = folder / "runs"
    found = {"iteration": (runs / "plain/checkpoints/iter_4.pth", plain, "model"),
             "best": (runs / "plain/checkpoints/best.pth", plain, "model"),
             "ema_iteration": (runs / "ema/checkpoints/iter_4.pth", ema, "ema"),
             "ema_best": (runs / "ema/checkpoints/best.pth", ema, "model"),
             "gan": (runs / "gan/checkpoints/iter_2.pth", gan, "model"),
             "converted": (folder / "release.pth", str(release_cfg), "model"),
             "stopped": (runs / "stopped/checkpoints/iter_3.pth", stopped, "model"),
             "last_good": (runs / "broken/checkpoints/iter_2.pth", broken, "model")}
    assert not (runs / "broken/checkpoints/iter_4.pth").exists()  # the broken weights were never saved
    assert load_checkpoint(str(runs / "ema/checkpoints/best.pth"))["ema_weights"]
    return {kind: (str(path), cfg, entry) for kind, (path, cfg, entry) in found.items()}


KINDS = ["iteration", "best", "ema_iteration", "ema_best", "gan", "converted", "stopped", "last_good"]


def model_with(path, entry):
    ckpt = load_checkpoint(path)
    cfg = (ckpt.get("config") or {}).get("model") or ckpt["model_config"]
    model = build_model(cfg).eval()
    model.load_state_dict(ckpt[entry])
    return model


def photo(kind):
    img, _ = hazy_photo("coffee", size=(64, 72) if kind != "gan" else (72, 80))
    return img


def expected(kind, kinds, entry=None):
    """uint8 output of the model built by hand from the entry the tools must use (or `entry`)."""
    path, _, right = kinds[kind]
    with torch.inference_mode():
        x = torch.from_numpy(photo(kind)).permute(2, 0, 1)[None].float() / 255
        return to_uint8(model_with(path, entry or right)(x).clamp(0, 1)[0].permute(1, 2, 0))


def close(a, b):
    return np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_the_entries_differ_where_a_checkpoint_has_two(kinds):
    """The EMA checkpoints' two weight sets give visibly different images: the tests below can tell them apart."""
    assert not close(expected("ema_iteration", kinds), expected("ema_iteration", kinds, "model"))


@pytest.mark.parametrize("kind", KINDS)
def test_predict(kinds, kind, tmp_path):
    path = kinds[kind][0]
    write_image(tmp_path / "in" / "x.png", photo(kind))
    assert predict_cli.main([str(tmp_path / "in"), str(tmp_path / "out"), "--weights", path]) == 0
    assert close(to_uint8(read_image(tmp_path / "out" / "x.png")), expected(kind, kinds))


def expected_psnr(kind, kinds, entry=None):
    path, cfg_path, right = kinds[kind]
    cfg = load_config(cfg_path)
    rows, _ = evaluate(model_with(path, entry or right), build_dataset(cfg["data"]["test"]),
                       get_metric(cfg["eval"]["preset"]), torch.device("cpu"))
    return summarize(rows)["psnr"]


@pytest.mark.parametrize("kind", KINDS)
def test_test_py(kinds, kind, tmp_path):
    path, cfg, _ = kinds[kind]
    mean = test_cli.main(["-c", cfg, "--weights", path, "--out", str(tmp_path / "res")])
    assert mean["psnr"] == pytest.approx(expected_psnr(kind, kinds), abs=1e-4)
    if kind == "ema_iteration":  # the other weights would score otherwise
        assert abs(expected_psnr(kind, kinds, "model") - mean["psnr"]) > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_hub(kinds, kind):
    path = kinds[kind][0]
    hub = torch.hub.load(ROOT, "hybrid" if kind == "gan" else "hdm", source="local", weights=path)
    with torch.inference_mode():
        out = hub(torch.from_numpy(photo(kind)).permute(2, 0, 1)[None].float() / 255)
    assert close(to_uint8(out[0].permute(1, 2, 0)), expected(kind, kinds))


@pytest.mark.parametrize("kind", KINDS)
def test_serve(kinds, kind):
    pytest.importorskip("flask")
    from hdm.web.app import create_app

    path = kinds[kind][0]
    app = create_app(load_models([(None, path)], torch.device("cpu")), ["w"], torch.device("cpu")).test_client()
    png = cv2.imencode(".png", cv2.cvtColor(photo(kind), cv2.COLOR_RGB2BGR))[1].tobytes()
    reply = app.post("/restore", data={"model": "0", "image": (io.BytesIO(png), "x.png")})
    assert reply.status_code == 200, reply.get_json()
    data = base64.b64decode(reply.get_json()["output"].split(",", 1)[1])
    out = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert close(out, expected(kind, kinds))


@pytest.mark.parametrize("kind", KINDS)
def test_export_loads_the_weights_it_exports(kinds, kind):
    """What hdm-export traces: the model and record it builds from the checkpoint (hdm.cli.export.main
    calls load_one and selection_record before tracing; tests/test_export.py traces real exports)."""
    path, _, entry = kinds[kind]
    model, cfg = load_one(None, path, torch.device("cpu"), fmt="contiguous")
    ckpt = load_checkpoint(path)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ckpt[entry].items())
    assert selection_record(path, ckpt, None)["chosen"]


@pytest.mark.parametrize("kind", KINDS)
def test_resume(kinds, kind, tmp_path, capsys):
    path, cfg_path, _ = kinds[kind]
    ckpt = load_checkpoint(path)
    if "optimizer" not in ckpt:  # best.pth and release weights are weights, not a training state
        code, err = run_cli(train_cli.main, ["-c", cfg_path, f"work_dir={tmp_path}", "--resume", path], capsys)
        assert code == 2 and len(err) == 1 and "holds weights, not a training state" in err[0]
        assert not os.listdir(tmp_path)
        return
    run = os.path.dirname(os.path.dirname(path))
    copy = tmp_path / os.path.basename(run)
    shutil.copytree(run, copy)
    shutil.rmtree(copy / "test", ignore_errors=True)
    iteration = ckpt["iteration"]
    train_cli.main(["-c", str(copy / "config.yaml"), f"work_dir={tmp_path}", "--resume",
                    str(copy / "checkpoints" / os.path.basename(path)), f"train.iterations={iteration + 1}"])
    resumed = load_checkpoint(str(copy / "checkpoints" / f"iter_{iteration + 1}.pth"))
    assert resumed["iteration"] == iteration + 1
    assert all(torch.isfinite(v).all() for v in resumed["model"].values() if v.is_floating_point())


BAD_VALUES = [None, "two", -5, 2.5, [1, 2], {"a": 1}, torch.zeros(2), True, float("nan")]


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(KINDS), entry=st.sampled_from(sorted(ENTRIES) + sorted(TRAINING_ENTRIES)),
       value=st.sampled_from(range(len(BAD_VALUES))), drop=st.booleans())
def test_a_hand_edited_checkpoint_is_one_line_in_every_tool(kinds, tmp_path_factory, kind, entry, value, drop, capsys):
    """Any entry dropped or replaced by a value of another kind: hdm-predict and a resume either work or
    refuse in one line with exit code 2 before work; never a traceback or exit code 1."""
    folder = tmp_path_factory.mktemp("edited")
    path, cfg_path, _ = kinds[kind]
    ckpt = load_checkpoint(path)
    if drop:
        ckpt.pop(entry, None)
    else:
        ckpt[entry] = BAD_VALUES[value]
    torch.save(ckpt, folder / "w.pth")
    write_image(folder / "in" / "x.png", photo(kind))
    code, err = run_cli(predict_cli.main, [str(folder / "in"), str(folder / "out"), "--weights", str(folder / "w.pth")],
                        capsys)
    assert code in (0, 2) and (code == 0 or len(err) == 1), (code, err)
    if "optimizer" in ckpt or entry == "optimizer":
        code, err = run_cli(train_cli.main, ["-c", cfg_path, f"work_dir={folder}/runs", "--resume", str(folder / "w.pth"),
                                             "train.iterations=100", "--check"], capsys)
        assert code in (0, 2) and (code == 0 or len(err) == 1), (code, err)


def test_integer_weights_for_float_parameters_are_refused(kinds, tmp_path, capsys):
    ckpt = load_checkpoint(kinds["iteration"][0])
    ckpt["model"] = {k: v.to(torch.int32) for k, v in ckpt["model"].items()}
    torch.save(ckpt, tmp_path / "w.pth")
    write_image(tmp_path / "in" / "x.png", photo("iteration"))
    code, err = run_cli(predict_cli.main, [str(tmp_path / "in"), str(tmp_path / "out"), "--weights",
                                           str(tmp_path / "w.pth")], capsys)
    assert code == 2 and len(err) == 1 and "holds torch.int32 values where the model has floating-point weights" in err[0]


SELECTION_FIELDS = [("by",), ("iteration",), ("psnr",), ("on_test_set",), ("val_set",), ("target_digests",),
                    ("val_set", "type"), ("val_set", "root"), ("val_set", "fingerprint"), ("val_set", "samples")]


@settings(max_examples=16, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(field=("psnr",), value=len(BAD_VALUES) - 1, drop=False)  # NaN: never a score in meta.json
@given(field=st.sampled_from(SELECTION_FIELDS), value=st.sampled_from(range(len(BAD_VALUES))), drop=st.booleans())
def test_a_hand_edited_selection_is_one_line_in_test_py(kinds, tmp_path_factory, field, value, drop, capsys):
    """The fields inside an entry too: test.py reads how best.pth was chosen, and refuses a field it cannot read
    in one line with exit code 2, never a KeyError."""
    folder = tmp_path_factory.mktemp("selection")
    path, cfg_path, _ = kinds["best"]
    ckpt = load_checkpoint(path)
    *parents, key = field
    node = ckpt["selection"]
    for parent in parents:
        node = node[parent]
    if drop:
        node.pop(key, None)
    else:
        node[key] = BAD_VALUES[value]
    torch.save(ckpt, folder / "w.pth")
    code, err = run_cli(test_cli.main, ["-c", cfg_path, "--weights", str(folder / "w.pth"), "--out", str(folder / "res")],
                        capsys)
    assert code in (0, 2) and (code == 0 or (len(err) == 1 and "'selection' entry" in err[0])), (code, err)
    if code == 0:  # what it wrote is strict JSON (no NaN) and names no field it could not read
        json.loads((folder / "res" / "meta.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in meta.json"))


@pytest.mark.parametrize("edit,said", [
    (lambda s: {**s, next(iter(s)): torch.zeros(3, 1)}, "of another shape, e.g. "),
    (lambda s: {f"module.{k}": v for k, v in s.items()}, "every key starts with 'module.'"),
    (lambda s: dict(list(s.items())[1:]), "1 weight(s) missing, e.g. "),
    (lambda s: {**s, "extra.weight": torch.zeros(1)}, "1 the model does not have, e.g. extra.weight"),
])
def test_weights_that_do_not_fit_are_one_line_naming_the_file_once_and_the_key(kinds, tmp_path, capsys, edit, said):
    ckpt = load_checkpoint(kinds["iteration"][0])
    ckpt["model"] = edit(ckpt["model"])
    torch.save(ckpt, tmp_path / "w.pth")
    write_image(tmp_path / "in" / "x.png", photo("iteration"))
    code, err = run_cli(predict_cli.main, [str(tmp_path / "in"), str(tmp_path / "out"), "--weights",
                                           str(tmp_path / "w.pth")], capsys)
    assert code == 2 and len(err) == 1 and said in err[0] and err[0].count("w.pth") == 1, err
