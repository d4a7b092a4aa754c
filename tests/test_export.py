"""ONNX export (hdm-export), ONNX Runtime against PyTorch on real photos, and hdm-predict --onnx
without torch."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from hdm.cli import export as export_cli  # noqa: E402
from hdm.cli import predict as predict_cli  # noqa: E402
from hdm.deploy.dcp_masks import region_masks  # noqa: E402
from hdm.deploy.onnx_model import OnnxModel  # noqa: E402
from hdm.export import Deployed, check_photos  # noqa: E402
from hdm.image_io import read_image, write_image  # noqa: E402
from hdm.models import build_model  # noqa: E402
from hdm.ops.dcp import dcp_region_masks  # noqa: E402
from tests.helpers import ROOT, hazy_photo, run_cli  # noqa: E402

# small variants keep the exports quick; the layers (and so the exported operators) are the full ones'
MODELS = {
    "hdm": {"type": "HDM", "dim": 16, "groups": 1, "blocks_per_group": 2, "dcn_backend": "torch"},
    "hdm_learned": {"type": "HDM", "dim": 16, "groups": 1, "blocks_per_group": 1, "region": "learned", "stages": "PSR"},
    "aecrnet": {"type": "AECRNet", "ngf": 16, "block_repeats": 2, "dcn_backend": "torch"},
    "hybrid": {"type": "HybridNet", "width": 8, "ms_channels": 4},
    "dcp": {"type": "DCP"},
    "pfdcp": {"type": "PFDCP", "max_levels": 3},
}
SIZES = ((200, 264), (157, 211), (96, 131))  # other sizes than the export's own check, odd ones among them


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{name: (onnx path, torch model)} exported through hdm-export from a checkpoint (random weights)."""
    folder = tmp_path_factory.mktemp("export")
    out = {}
    for name, cfg in MODELS.items():
        torch.manual_seed(0)
        model = build_model(cfg).eval()
        argv = [str(folder / f"{name}.onnx")]
        if any(True for _ in model.parameters()):
            with torch.no_grad():  # away from the initialisation, so the outputs are not near constant
                for p in model.parameters():
                    p.add_(0.05 * torch.randn_like(p))
            torch.save({"model": model.state_dict(), "config": {"model": cfg, "eval": {"preset": "ffa_rgb"}}, "iteration": 7},
                       folder / f"{name}.pth")
            argv += ["--weights", str(folder / f"{name}.pth")]
        else:
            (folder / f"{name}.yaml").write_text(yaml.safe_dump({"model": cfg}))
            argv += ["-c", str(folder / f"{name}.yaml")]
        assert export_cli.main(argv) == 0
        out[name] = (str(folder / f"{name}.onnx"), model)
    return out


def test_numpy_masks_equal_the_torch_masks_on_photos():
    for name, size in (("astronaut", None), ("coffee", (301, 403)), ("chelsea", (1100, 1300)), ("rocket", (97, 130))):
        img, _ = hazy_photo(name, size=size)
        h, w = img.shape[:2]
        x = np.ascontiguousarray(img[: h - h % 4, : w - w % 4].transpose(2, 0, 1)[None], dtype=np.float32) / 255
        theirs = dcp_region_masks(torch.from_numpy(x)).numpy()
        ours = region_masks(x)
        assert ours.shape == theirs.shape and np.array_equal(ours, theirs), name
    # the options pass through (fewer regions, area resize, no BGR quirk)
    opts = {"num_regions": 3, "resize": "area", "bgr_quirk": False, "patch": 7}
    assert np.array_equal(region_masks(x, **opts), dcp_region_masks(torch.from_numpy(x), **opts).numpy())


@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_runtime_reproduces_pytorch(exported, name):
    path, model = exported[name]
    meta = json.load(open(path[:-5] + ".json"))
    assert meta["model"] == MODELS[name]["type"] and meta["config"]["model"] == MODELS[name]
    assert max(meta["check"]["max_abs_diff"]) <= 1e-4 and len(meta["check"]["sizes"]) == 3
    assert (meta["masks"] is not None) == (name == "hdm")
    assert [i["name"] for i in meta["inputs"]] == (["image", "masks"] if name == "hdm" else ["image"])
    if name != "dcp" and name != "pfdcp":
        assert meta["iteration"] == 7
    session = OnnxModel(path)
    deployed = Deployed(model)
    for photo in check_photos(SIZES):
        with torch.inference_mode():
            ref = deployed(torch.from_numpy(photo)).numpy()
        out = session.run_batch(photo)
        assert out.shape == photo.shape
        assert float(ref.std()) > 1e-3  # not a constant image
        assert np.abs(out - ref).max() <= 1e-4, (name, photo.shape)


def test_predict_onnx_runs_without_torch(exported, tmp_path):
    """hdm-predict --onnx in a process where importing torch fails; its outputs are the torch route's."""
    path, _ = exported["hdm"]
    img, _ = hazy_photo("coffee", size=(121, 163))
    write_image(tmp_path / "in" / "a.png", img)
    code = ("import sys; sys.modules['torch'] = None; from hdm.cli.predict import run; "
            f"sys.argv = ['hdm-predict', {str(tmp_path / 'in')!r}, {str(tmp_path / 'onnx')!r}, '--onnx', {path!r}]; run()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "restored 1 of 1" in result.stdout
    pth = os.path.join(os.path.dirname(path), "hdm.pth")
    assert predict_cli.main([str(tmp_path / "in"), str(tmp_path / "torch"), "--weights", pth]) == 0
    a, b = read_image(tmp_path / "onnx" / "a.png"), read_image(tmp_path / "torch" / "a.png")
    assert a.shape == (121, 163, 3) and np.abs(a - b).max() <= 1 / 255 + 1e-6


def test_export_refusals_are_one_line(exported, tmp_path, capsys):
    path, _ = exported["dcp"]
    folder = os.path.dirname(path)
    code, err = run_cli(export_cli.main, [path, "-c", os.path.join(folder, "dcp.yaml")], capsys)
    assert code == 2 and len(err) == 1 and "exists" in err[0] and "--overwrite" in err[0]
    code, err = run_cli(export_cli.main, [str(tmp_path / "x.onx"), "-c", os.path.join(folder, "dcp.yaml")], capsys)
    assert code == 2 and ".onnx" in err[0]
    (tmp_path / "a_file").write_text("")
    code, err = run_cli(export_cli.main, [str(tmp_path / "a_file" / "x.onnx"), "-c", os.path.join(folder, "dcp.yaml")], capsys)
    assert code == 2 and "no such folder" in err[0]
    (tmp_path / "depth.yaml").write_text(yaml.safe_dump({"model": {"type": "HDM", "region": "depth", "dim": 8}}))
    torch.save({"model": build_model({"type": "HDM", "region": "depth", "dim": 8}).state_dict()}, tmp_path / "d.pth")
    code, err = run_cli(export_cli.main, [str(tmp_path / "d.onnx"), "-c", str(tmp_path / "depth.yaml"),
                                          "--weights", str(tmp_path / "d.pth")], capsys)
    assert code == 2 and len(err) == 1 and "trans" in err[0]
    assert not any(p.suffix in (".onnx", ".json", ".tmp") for p in tmp_path.iterdir())
    # the ONNX route of predict: its options only, and the JSON beside the file
    write_image(tmp_path / "in.png", np.zeros((8, 8, 3), np.uint8))
    code, err = run_cli(predict_cli.main, [str(tmp_path / "in.png"), str(tmp_path / "o"), "--onnx", path, "--tile", "64"], capsys)
    assert code == 2 and "--tile" in err[0]
    os.link(path, tmp_path / "alone.onnx")
    code, err = run_cli(predict_cli.main, [str(tmp_path / "in.png"), str(tmp_path / "o"), "--onnx", str(tmp_path / "alone.onnx")],
                        capsys)
    assert code == 2 and "alone.json: missing" in err[0]


def test_a_failed_check_writes_nothing(tmp_path, monkeypatch, capsys):
    """The export publishes nothing unless ONNX Runtime reproduces PyTorch (here the tolerance is 0)."""
    monkeypatch.setattr("hdm.export.TOLERANCE", -1.0)
    (tmp_path / "dcp.yaml").write_text(yaml.safe_dump({"model": {"type": "DCP"}}))
    code, err = run_cli(export_cli.main, [str(tmp_path / "dcp.onnx"), "-c", str(tmp_path / "dcp.yaml")], capsys)
    assert code == 1 and len(err) == 1 and "differs from PyTorch" in err[0] and "nothing written" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dcp.yaml"]


def test_an_onnx_runtime_failure_names_the_file_and_the_others_go_on(exported, tmp_path, monkeypatch, capsys):
    import onnxruntime
    path, _ = exported["dcp"]
    write_image(tmp_path / "in" / "a.png", hazy_photo("coffee", size=(40, 50))[0])
    write_image(tmp_path / "in" / "b.png", hazy_photo("coffee", size=(50, 40))[0])
    real_run = onnxruntime.InferenceSession.run

    def fail_on_wide(self, names, feeds, *args):
        if feeds["image"].shape[-1] == 50:
            raise RuntimeError("Failed to allocate memory for requested buffer of size 123")
        return real_run(self, names, feeds, *args)
    monkeypatch.setattr(onnxruntime.InferenceSession, "run", fail_on_wide)
    code, err = run_cli(predict_cli.main, [str(tmp_path / "in"), str(tmp_path / "out"), "--onnx", path], capsys)
    assert code == 1 and len(err) == 1
    assert err[0].startswith(f"error: {tmp_path / 'in' / 'a.png'}: 50x40: ONNX Runtime failed (Failed to allocate")
    assert sorted(os.listdir(tmp_path / "out")) == ["b.png"]
