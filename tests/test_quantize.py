"""hdm-export --quantize: the checked graph's INT8 form, its cost against the float32 graph recorded per
calibration image, refused below --min-psnr, every bad argument one line before the export's work."""
import json
import math
import os
import shutil

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import onnx  # noqa: E402

from hdm.cli import export as export_cli  # noqa: E402
from hdm.cli import predict as predict_cli  # noqa: E402
from hdm.deploy.onnx_model import OnnxModel  # noqa: E402
from hdm.deploy.quantize import psnr_db  # noqa: E402
from hdm.export import Deployed  # noqa: E402
from hdm.image_io import read_image, write_image  # noqa: E402
from hdm.models import build_model  # noqa: E402
from tests.helpers import hazy_photo, run_cli  # noqa: E402

# small variants of the three networks: their layers, and so their quantised operators, are the full ones'
NETWORKS = {
    "hdm": {"type": "HDM", "dim": 16, "groups": 1, "blocks_per_group": 1, "dcn_backend": "torch"},
    "aecrnet": {"type": "AECRNet", "ngf": 8, "block_repeats": 1, "dcn_backend": "torch"},
    "hybrid": {"type": "HybridNet", "width": 8, "ms_channels": 4},
}


def checkpoint(folder, cfg):
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():  # away from the initialisation, so the outputs are not near constant
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = folder / "net.pth"
    torch.save({"model": model.state_dict(), "config": {"model": cfg}, "iteration": 3}, path)
    return str(path), model


def calibration_folder(folder):
    """Two hazy photo crops of other sizes (odd ones) as PNG files."""
    write_image(folder / "calib" / "a.png", hazy_photo("coffee", size=(71, 97))[0])
    write_image(folder / "calib" / "b.png", hazy_photo("chelsea", size=(64, 83))[0])
    return str(folder / "calib")


@pytest.mark.parametrize("name", NETWORKS)
def test_an_int8_export_records_its_cost_and_runs_as_any_export(name, tmp_path, capsys):
    weights, model = checkpoint(tmp_path, NETWORKS[name])
    calib = calibration_folder(tmp_path)
    out = str(tmp_path / "int8.onnx")
    assert export_cli.main([out, "--weights", weights, "--quantize", calib, "--min-psnr", "5"]) == 0
    assert "as INT8 (calibrated on 2 images)" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == ["calib", "int8.json", "int8.onnx", "net.pth"]  # no temporary left
    meta = json.loads((tmp_path / "int8.json").read_text())
    record = meta["quantization"]
    assert [i["name"] for i in record["images"]] == [os.path.join(calib, "a.png"), os.path.join(calib, "b.png")]
    assert [i["size"] for i in record["images"]] == [[71, 97], [64, 83]]
    assert meta["check"]["graph"] == "float32, before quantisation" and max(meta["check"]["max_abs_diff"]) <= 1e-4
    # the file is quantised: int8 weights, and quantize / dequantize pairs
    graph = onnx.load(out).graph
    assert any(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}
    # the recorded PSNR is the file's own against the float32 model's (PyTorch's, within 1e-4 of it)
    session = OnnxModel(out)
    deployed = Deployed(model)
    for entry in record["images"]:
        x = np.ascontiguousarray(read_image(entry["name"]).transpose(2, 0, 1))[None]
        with torch.inference_mode():
            ref = deployed(torch.from_numpy(x)).numpy()
        measured = psnr_db(session.run_batch(x), ref)
        assert entry["psnr_vs_float32_db"] >= 5 and abs(measured - entry["psnr_vs_float32_db"]) < 0.05
    assert record["psnr_vs_float32_db"]["min"] == min(i["psnr_vs_float32_db"] for i in record["images"])
    # hdm-predict --onnx runs it as any export
    assert predict_cli.main([calib, str(tmp_path / "restored"), "--onnx", out]) == 0
    assert sorted(os.listdir(tmp_path / "restored")) == ["a.png", "b.png"]


def test_below_min_psnr_nothing_is_written(tmp_path, capsys):
    weights, _ = checkpoint(tmp_path, NETWORKS["hybrid"])
    calib = calibration_folder(tmp_path)
    before = sorted(os.listdir(tmp_path))
    code, err = run_cli(export_cli.main, [str(tmp_path / "int8.onnx"), "--weights", weights, "--quantize", calib,
                                          "--min-psnr", "500"], capsys)
    assert code == 1 and len(err) == 1
    assert "int8.onnx: the INT8 graph's output on " in err[0] and "below --min-psnr 500; nothing written" in err[0]
    assert sorted(os.listdir(tmp_path)) == before


@pytest.fixture()
def networks_checkpoint(tmp_path):
    return checkpoint(tmp_path, NETWORKS["hybrid"])[0]


def test_bad_calibration_arguments_are_one_line_before_any_work(tmp_path, capsys, networks_checkpoint, monkeypatch):
    def no_export(*args, **kwargs):
        raise AssertionError("the export started")
    monkeypatch.setattr("hdm.export.export", no_export)
    out = str(tmp_path / "m.onnx")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "dcp.yaml").write_text(yaml.safe_dump({"model": {"type": "DCP"}}))
    calib = calibration_folder(tmp_path)
    cases = [
        ([out, "--weights", networks_checkpoint, "--min-psnr", "30"], "--min-psnr applies to --quantize only"),
        ([out, "-c", str(tmp_path / "dcp.yaml"), "--quantize", calib], "DCP has no weights to quantize"),
        ([out, "--weights", networks_checkpoint, "--quantize", str(tmp_path / "missing")], "missing: no such file or folder"),
        ([out, "--weights", networks_checkpoint, "--quantize", str(tmp_path / "empty")], "empty: no images found"),
        ([out, "--weights", networks_checkpoint, "--quantize", calib, str(tmp_path / "notes.png")], "notes.png"),
        ([out, "--weights", networks_checkpoint, "--quantize"], "--quantize"),
        ([out, "--weights", networks_checkpoint, "--quantize", ""], "'': an empty path"),
    ]
    for argv, expected in cases:
        code, err = run_cli(export_cli.main, argv, capsys)
        assert code == 2 and len(err) == 1 and expected in err[0], (argv, err)
    # an image named as the description to be written is an input: never replaced, even with --overwrite
    shutil.copyfile(os.path.join(calib, "a.png"), tmp_path / "m.json")
    code, err = run_cli(export_cli.main, [out, "--weights", networks_checkpoint, "--quantize", str(tmp_path / "m.json"),
                                          "--overwrite"], capsys)
    assert code == 2 and len(err) == 1 and "m.json: an output would replace an input" in err[0]
    assert not os.path.exists(out) and read_image(tmp_path / "m.json").shape == (71, 97, 3)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not 0 < v < math.inf).map(repr),
                 st.text(min_size=1, max_size=8).filter(lambda t: not _positive_number(t))))
def test_any_min_psnr_but_a_finite_positive_number_is_a_usage_error(text, tmp_path_factory, capsys):
    folder = tmp_path_factory.mktemp("psnr")
    code, err = run_cli(export_cli.main, [str(folder / "m.onnx"), "-c", "x.yaml", "--quantize", "calib", f"--min-psnr={text}"],
                        capsys)
    assert code == 2 and len(err) == 1 and "--min-psnr" in err[0]
    assert os.listdir(folder) == []


def _positive_number(text):
    try:
        return 0 < float(text) < math.inf
    except ValueError:
        return False


def test_psnr_is_none_for_equal_outputs_and_ten_log_of_the_inverse_mse_otherwise():
    a = np.zeros((1, 3, 4, 5), np.float32)
    assert psnr_db(a, a) is None
    assert psnr_db(a + 0.1, a) == pytest.approx(20.0)
