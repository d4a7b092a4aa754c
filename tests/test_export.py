"""ONNX export (hdm-export), ONNX Runtime against PyTorch on real photos, hdm-predict --onnx
without torch, the verification of a file when it loads (its .json against the contract embedded in
it), ONNX Runtime's own log kept off the terminal, the export's outputs never replacing an input, and the
export's temporary files."""
import copy
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from hdm.cli import export as export_cli  # noqa: E402
from hdm.cli import predict as predict_cli  # noqa: E402
from hdm.deploy.dcp_masks import region_masks  # noqa: E402
from hdm.deploy.description import CONTRACT, CONTRACT_KEY, check_contract, check_description, contract  # noqa: E402
from hdm.deploy.onnx_model import OnnxModel  # noqa: E402
from hdm.export import Deployed, check_photos, describe  # noqa: E402
from hdm.files import TEMPORARY  # noqa: E402
from hdm.image_io import read_image, write_image  # noqa: E402
from hdm.models import build_model  # noqa: E402
from hdm.models.dcp_baselines import EXPORT_MAX_SIDE  # noqa: E402
from hdm.ops import dcp as dcp_ops  # noqa: E402
from hdm.ops.dcp import dcp_region_masks  # noqa: E402
from tests.helpers import ROOT, SPELLINGS, hazy_photo, run_cli, spell  # noqa: E402

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
    """exported(name) -> (onnx path, torch model): MODELS[name] exported through hdm-export from a checkpoint
    (random weights), once per module and only when a test asks for it."""
    folder = tmp_path_factory.mktemp("export")
    done = {}

    def export_one(name):
        cfg = MODELS[name]
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
        return str(folder / f"{name}.onnx"), model

    def get(name):
        if name not in done:
            done[name] = export_one(name)
        return done[name]
    return get


class FilterForms(torch.nn.Module):
    """The DCP filters whose exported form differs from eager PyTorch's (hdm.export): the min filter as
    pooling (odd and even windows) and beyond POOL_MAX_WINDOW as the doubling minimum, the box filter
    with windows clipped to the image (small and larger than the images below), and the guided filter,
    built on them."""

    def forward(self, x):
        outs = [dcp_ops.min_filter(x, k) for k in (1, 4, 15, dcp_ops.POOL_MAX_WINDOW, dcp_ops.POOL_MAX_WINDOW + 2)]
        outs += [dcp_ops.box_filter(x, k, border="clip") for k in (4, 121)]
        return torch.cat(outs + [dcp_ops.guided_filter(x[:, :1], x[:, 1:], k, 1e-4, border="clip") for k in (4, 121)], dim=1)


def test_the_filters_exported_forms_equal_eager_at_any_size(tmp_path):
    import onnxruntime

    dims = {2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}
    torch.onnx.export(FilterForms(), (torch.rand(1, 2, 64, 72),), tmp_path / "f.onnx", dynamo=True,
                      dynamic_shapes=(dims,), opset_version=18, external_data=False, verbose=False)
    session = onnxruntime.InferenceSession(tmp_path / "f.onnx", providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(0)
    for h, w in ((1, 1), (3, 5), (37, 29), (130, 97)):
        x = torch.rand(1, 2, h, w, generator=gen)
        out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        np.testing.assert_allclose(out, FilterForms()(x).numpy(), rtol=0, atol=1e-6, err_msg=f"{h}x{w}")


class AtmosphereForm(torch.nn.Module):
    """He et al.'s atmospheric light, whose exported form takes the chosen pixels from ONNX TopK's indices."""

    def forward(self, img, dark):
        return dcp_ops.atmospheric_light_top(img, dark, top=0.01)


def test_the_atmospheric_lights_exported_form_breaks_ties_as_eager(tmp_path):
    """Maps of a few levels make ties everywhere: among the dark channel's largest values and among the
    candidates' brightness. The exported graph must pick the same pixel as eager PyTorch."""
    import onnxruntime

    dims = {2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}
    args = (torch.rand(1, 3, 64, 72), torch.rand(1, 1, 64, 72))
    torch.onnx.export(AtmosphereForm().eval(), args, tmp_path / "a.onnx", dynamo=True, dynamic_shapes=(dims, dims),
                      opset_version=18, external_data=False, verbose=False)
    session = onnxruntime.InferenceSession(tmp_path / "a.onnx", providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    gen = torch.Generator().manual_seed(0)
    for h, w in ((1, 1), (3, 5), (37, 29), (130, 97), (240, 320)):
        for levels in (2, 3, 8):
            img = torch.randint(0, levels, (1, 3, h, w), generator=gen).float() / (levels - 1)
            dark = dcp_ops.dark_channel(img, 3)
            out = session.run(None, dict(zip(names, (img.numpy(), dark.numpy()))))[0]
            np.testing.assert_array_equal(out, AtmosphereForm()(img, dark).numpy(), err_msg=f"{h}x{w}, {levels} levels")


def test_numpy_masks_equal_the_torch_masks_at_full_hd():
    """The benchmark's synthetic image at 1920 x 1080: with the Lanczos resampling summed in float32 the
    two libraries' last bits differed and one mask pixel changed region."""
    gen = torch.Generator().manual_seed(0)
    low = torch.nn.functional.interpolate(torch.rand(1, 3, 33, 60, generator=gen), size=(1080, 1920), mode="bicubic")
    x = (0.6 * low.clamp(0, 1) + 0.35 + 0.05 * torch.rand(1, 3, 1080, 1920, generator=gen)).clamp(0, 1)
    assert np.array_equal(region_masks(x.numpy()), dcp_region_masks(x).numpy())


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
    path, model = exported(name)
    meta = json.load(open(path[:-5] + ".json"))
    assert meta["model"] == MODELS[name]["type"] and meta["config"]["model"] == MODELS[name]
    assert max(meta["check"]["max_abs_diff"]) <= 1e-4 and len(meta["check"]["sizes"]) == 3
    assert (meta["masks"] is not None) == (name == "hdm")
    assert meta["max_side"] == (EXPORT_MAX_SIDE if name == "pfdcp" else None)  # the RNN's scan takes any length
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


def test_an_onnx_model_scales_or_refuses_what_it_is_given(exported):
    """OnnxModel(image): uint8 and uint16 arrays scaled as image files are, float arrays in [0, 1] as they are;
    0..255 floats, NaN, signed integers and channels-first arrays are refused with one line."""
    model = OnnxModel(exported("dcp")[0])
    photo = check_photos(((40, 48),))[0][0].transpose(1, 2, 0)
    as_uint8 = np.round(photo * 255).astype(np.uint8)
    reference = model(as_uint8.astype(np.float32) / 255)
    np.testing.assert_array_equal(model(as_uint8), reference)
    np.testing.assert_allclose(model(as_uint8.astype(np.uint16) * 257), reference, rtol=0, atol=1e-6)
    for bad, words in ((as_uint8.astype(np.float32), "[0, 1]"), (np.full((8, 8, 3), np.nan, np.float32), "[0, 1]"),
                       (as_uint8.astype(np.int32), "int32"), (photo.transpose(2, 0, 1), "(H, W, 3)")):
        with pytest.raises(ValueError, match=r"^image: .*" + re.escape(words)) as err:
            model(bad)
        assert "\n" not in str(err.value)


def test_predict_onnx_runs_without_torch(exported, tmp_path):
    """hdm-predict --onnx in a process where importing torch fails; its outputs are the torch route's."""
    path, _ = exported("hdm")
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
    path, _ = exported("dcp")
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
    path, _ = exported("dcp")
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


# --- a file is verified when it loads: its description's keys, its digest, its graph's inputs and outputs

SETTINGS = settings(deadline=None, database=None, max_examples=60)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=8)
# every key the loader uses, in an HDM description (masks set); (path, name in the messages)
LOADER_KEYS = [(("format",), "format"), (("sha256",), "sha256"), (("max_side",), "max_side"), (("masks",), "masks"),
               (("masks", "options"), "masks.options"), (("inputs",), "inputs"), (("outputs",), "outputs")] + \
    [((side, i, key), f"{side}[{i}].{key}") for side, n in (("inputs", 2), ("outputs", 1)) for i in range(n)
     for key in ("name", "shape", "dtype")]


@pytest.fixture(scope="module")
def hdm_description():
    """What hdm-export writes beside an HDM file (DCP masks set, a max_side), less the check's figures."""
    cfg = {"model": MODELS["hdm"]}
    meta = describe(Deployed(build_model(MODELS["hdm"])), cfg, {"weights": "hdm.pth", "chosen": "final iteration"})
    return check_description({**meta, "sha256": "0" * 64, "max_side": 4096}, "hdm.json")


def pair(tmp_path, onnx_path, meta, name="m"):
    """A copy of an .onnx file (or a file that is none) beside the description `meta` in tmp_path."""
    if onnx_path is None:
        (tmp_path / f"{name}.onnx").write_bytes(b"never read: the description is checked first")
    else:
        shutil.copy(onnx_path, tmp_path / f"{name}.onnx")
    (tmp_path / f"{name}.json").write_text(json.dumps(meta))
    return tmp_path / f"{name}.onnx"


def predict_on_one_photo(onnx_path, tmp_path, capsys):
    """(exit code, stderr lines) of hdm-predict --onnx on one photo; the output folder must stay unmade."""
    write_image(tmp_path / "in.png", hazy_photo("coffee", size=(40, 52))[0])
    code, err = run_cli(predict_cli.main, [str(tmp_path / "in.png"), str(tmp_path / "out"), "--onnx", str(onnx_path)],
                        capsys)
    assert not (tmp_path / "out").exists()
    return code, err


def at(meta, path):
    for key in path[:-1]:
        meta = meta[key]
    return meta, path[-1]


def test_a_tampered_graph_is_refused_before_any_image(exported, tmp_path, capsys):
    """One byte of a weight changed: ONNX Runtime would run the graph; the digest refuses it."""
    import onnx
    import onnxruntime
    original = exported("aecrnet")[0]
    path = pair(tmp_path, original, json.loads(open(original[:-5] + ".json").read()))
    data = bytearray(path.read_bytes())
    weight = max(onnx.load(str(path)).graph.initializer, key=lambda t: len(t.raw_data)).raw_data
    data[data.find(weight) + 4 * (len(weight) // 8) + 3] ^= 0x40  # the exponent of one float32 weight
    path.write_bytes(data)
    onnxruntime.InferenceSession(bytes(data), providers=["CPUExecutionProvider"])  # a graph that loads
    code, err = predict_on_one_photo(path, tmp_path, capsys)
    assert code == 2 and err == [f"error: --onnx: {path}: its sha256 is not the one {tmp_path / 'm.json'} records: the "
                                 f"file was changed after export, or the .json belongs to another export"]


def test_a_graph_beside_another_models_description_is_refused(exported, hdm_description, tmp_path, capsys):
    """A DCP graph beside an HDM description: its digest tells; made to match, the graph's inputs tell."""
    path = pair(tmp_path, exported("dcp")[0], hdm_description)
    code, err = predict_on_one_photo(path, tmp_path, capsys)
    assert code == 2 and len(err) == 1 and "sha256 is not the one" in err[0]
    pair(tmp_path, exported("dcp")[0], {**hdm_description, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    code, err = predict_on_one_photo(path, tmp_path, capsys)
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"error: --onnx: {tmp_path / 'm.json'}: key 'inputs' is [") and \
        f"but {path} was exported with [" in err[0] and err[0].endswith("the .json was changed after export (put "
                                                                       "hdm-export's back, or export the model again)")


@pytest.mark.parametrize("path,name", LOADER_KEYS, ids=[name for _, name in LOADER_KEYS])
def test_each_missing_key_is_named(hdm_description, tmp_path, path, name):
    meta = copy.deepcopy(hdm_description)
    parent, key = at(meta, path)
    del parent[key]
    with pytest.raises(ValueError) as err:
        OnnxModel(str(pair(tmp_path, None, meta)))
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'm.json'}: key {name!r} is missing (expected ") and "\n" not in message


@SETTINGS
@given(value=JSON.filter(lambda v: not isinstance(v, dict)))
def test_a_description_that_is_not_an_object_is_refused(tmp_path_factory, value):
    path = pair(tmp_path_factory.mktemp("not_an_object"), None, value)
    with pytest.raises(ValueError) as err:
        OnnxModel(str(path))
    expected = f"{path.parent / 'm.json'}: expected a JSON object (hdm-export's description), got "
    assert str(err.value).startswith(expected)


def allowed_types(meta, path):
    """The Python types of the JSON values the loader accepts at `path` (a test's own statement of the rule)."""
    if path[-2:-1] == ("shape",):
        return {int, str}
    if path in (("max_side",), ("masks",)):
        return {type(None), int} if path == ("max_side",) else {type(None), dict}
    parent, key = at(meta, path)
    return {int, float} if type(parent[key]) is float else {type(parent[key])}


@SETTINGS
@given(data=st.data())
def test_a_value_of_the_wrong_type_is_named_with_its_key(hdm_description, data):
    """Any key the loader uses (the masks' options and each dimension among them), replaced by a JSON value
    of another type, is refused in one line naming the key."""
    meta = copy.deepcopy(hdm_description)
    paths = [p for p, _ in LOADER_KEYS] + [("masks", "options", k) for k in meta["masks"]["options"]] + \
        [(side, i) for side, n in (("inputs", 2), ("outputs", 1)) for i in range(n)] + \
        [(side, i, "shape", d) for side, n in (("inputs", 2), ("outputs", 1)) for i in range(n) for d in range(4)]
    path = data.draw(st.sampled_from(paths))
    always_wrong = path[0] in ("format", "sha256")  # no generated value is the format or a digest
    wrong = data.draw(JSON.filter(lambda v: always_wrong or type(v) not in allowed_types(meta, path)))
    parent, key = at(meta, path)
    parent[key] = wrong
    named = path[:-1] if path[-2:-1] == ("shape",) else path  # a dimension is reported as its shape
    name = ".".join(p if isinstance(p, str) else f"[{p}]" for p in named).replace(".[", "[")
    with pytest.raises(ValueError) as err:
        check_description(meta, "m.json")
    assert str(err.value).startswith(f"m.json: key {name!r}") and "\n" not in str(err.value), (path, wrong, err.value)


@SETTINGS
@given(data=st.data())
def test_any_mutation_of_a_description_is_accepted_or_one_line(hdm_description, data):
    """Whatever is put anywhere in a description, checking it raises nothing but a one-line ValueError."""
    meta = copy.deepcopy(hdm_description)
    for _ in range(data.draw(st.integers(1, 4))):
        node, key = meta, None
        while isinstance(node, (dict, list)) and node and data.draw(st.booleans()):
            key = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
            parent, node = node, node[key]
        if key is not None:
            parent[key] = data.draw(JSON)
    try:
        assert check_description(copy.deepcopy(meta), "m.json") == meta
    except ValueError as err:
        assert str(err).startswith("m.json: ") and "\n" not in str(err)


def handmade(folder, meta, nodes=None, element="FLOAT", shape=(1, 3, "h", "w"), initializers=(), name="g"):
    """An ONNX file made here with onnx.helper (image -> `nodes` -> restored; an Identity by default) whose
    metadata holds the contract of the description `meta`, beside `meta` with the file's digest."""
    from onnx import TensorProto, helper
    element = getattr(TensorProto, element)
    graph = helper.make_graph(nodes or [helper.make_node("Identity", ["image"], ["restored"])], "g",
                              [helper.make_tensor_value_info("image", element, list(shape))],
                              [helper.make_tensor_value_info("restored", element, list(shape))], list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    helper.set_model_props(model, {CONTRACT_KEY: contract(meta)})
    data = model.SerializeToString()
    (folder / f"{name}.onnx").write_bytes(data)
    (folder / f"{name}.json").write_text(json.dumps({**meta, "sha256": hashlib.sha256(data).hexdigest()}))
    return folder / f"{name}.onnx"


def image_only(meta):
    """A description of a graph without masks (image -> restored)."""
    return {**meta, "masks": None, "inputs": meta["inputs"][:1]}


@SETTINGS
@given(data=st.data())
def test_a_contract_shape_the_graph_does_not_have_is_refused(hdm_description, tmp_path_factory, data):
    """A contract (the .json and the file's own copy alike) whose dimensions are not the graph's (a size fixed
    where the graph's is free, or the reverse, or another fixed size) is refused before any image."""
    meta = copy.deepcopy(image_only(hdm_description))
    side = data.draw(st.sampled_from(["inputs", "outputs"]))
    dim = data.draw(st.integers(0, 3))
    graph_dim = [1, 3, None, None][dim]
    new = data.draw((st.integers(1, 9) | st.text("hw", min_size=1, max_size=3)).filter(
        lambda v: (v != graph_dim) if graph_dim is not None else isinstance(v, int)))
    meta[side][0]["shape"][dim] = new
    path = handmade(tmp_path_factory.mktemp("shape"), meta)
    with pytest.raises(ValueError, match=f"^{path}: the graph's '{meta[side][0]['name']}' has the shape "):
        OnnxModel(str(path))


def test_masks_of_another_number_of_regions_than_the_options_are_refused(hdm_description):
    meta = copy.deepcopy(hdm_description)
    meta["masks"]["options"]["num_regions"] = 4
    with pytest.raises(ValueError, match=r"^m.json: key 'inputs': the masks have 5 regions in dimension 1, "
                                         r"masks.options.num_regions is 4$"):
        check_description(meta, "m.json")


@pytest.mark.parametrize("kind,shape,message", [
    ("FLOAT16", [1, 3, "h", "w"], "the graph's 'image' is tensor(float16), its description's float32"),
    ("FLOAT", [3, "h", "w"],
     "the graph's 'image' has the shape [3, 'free', 'free'], its description [1, 3, 'free', 'free']"),
])
def test_a_graph_of_another_element_type_or_rank_is_refused(hdm_description, tmp_path, kind, shape, message):
    """Graphs made here (image -> Identity -> restored) carrying the contract of the description beside them."""
    import onnx
    path = handmade(tmp_path, image_only(hdm_description), element=kind, shape=shape)
    onnx.checker.check_model(str(path))
    with pytest.raises(ValueError) as err:
        OnnxModel(str(path))
    assert str(err.value) == f"{path}: {message}"


# --- the .json against the contract the file was exported with; files of an earlier hdm-export; ONNX Runtime's log

def test_a_description_edited_after_export_is_refused_before_any_image(exported, tmp_path, capsys):
    """masks.options.downscale_factor=2 in an HDM file's .json (a positive integer: its type is right)."""
    original = exported("hdm")[0]
    meta = json.loads(open(original[:-5] + ".json").read())
    meta["masks"]["options"]["downscale_factor"] = 2
    path = pair(tmp_path, original, meta)
    code, err = predict_on_one_photo(path, tmp_path, capsys)
    assert code == 2 and err == [f"error: --onnx: {tmp_path / 'm.json'}: key 'masks.options.downscale_factor' is 2, "
                                 f"but {path} was exported without it: the .json was changed after export (put "
                                 f"hdm-export's back, or export the model again)"]


@pytest.fixture(scope="module")
def hdm_file(exported):
    """(description, ONNX Runtime session) of the exported HDM file (DCP masks set)."""
    path = exported("hdm")[0]
    return json.loads(open(path[:-5] + ".json").read()), OnnxModel(path).session


def contract_leaves(value, path=()):
    """The paths of every value (leaves and containers) of a JSON value."""
    yield path
    if isinstance(value, (dict, list)):
        for key in (sorted(value) if isinstance(value, dict) else range(len(value))):
            yield from contract_leaves(value[key], path + (key,))


def key_name(path):
    return ".".join(p if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")


def same_json(a, b):
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@SETTINGS
@given(data=st.data())
def test_any_change_to_the_contract_is_refused(hdm_file, data):
    """Any value of the contract (format, inputs, outputs, masks, max_side, and everything in them) replaced,
    removed, or given a new key: the type check names it, or else the file's own copy of the contract does.
    The rest of the .json (the config, the check's figures) is free."""
    meta, session = hdm_file
    changed = copy.deepcopy(meta)
    changed["config"], changed["check"] = data.draw(JSON), data.draw(JSON)
    assert check_contract(session, changed, "m.onnx", "m.json") is None
    path = data.draw(st.sampled_from([p for key in CONTRACT for p in contract_leaves(meta[key], (key,))]))
    parent, key = at(changed, path)
    how = data.draw(st.sampled_from(["replace", "remove", "add"] if isinstance(parent[key], dict) else
                                    ["replace", "remove"]))
    if how == "replace":
        parent[key] = data.draw(JSON.filter(lambda v: not same_json(v, parent[key])))
    elif how == "remove":
        del parent[key]
        path = path[:-1] if isinstance(parent, list) else path  # a shorter array differs as a whole
    else:
        name = data.draw(st.text(max_size=5).filter(lambda k: k not in parent[key] and not {"'", '"'} & set(k)))
        parent[key][name] = data.draw(JSON)
        path = path + (name,)
    try:
        check_description(changed, "m.json")
    except ValueError as err:
        assert str(err).startswith("m.json: ") and "\n" not in str(err)
        return
    with pytest.raises(ValueError) as err:
        check_contract(session, changed, "m.onnx", "m.json")
    named = tuple(f"m.json: key {key_name(path[:n])!r}"[:-1] for n in range(1, len(path) + 1))
    assert str(err.value).startswith(named) and "\n" not in str(err.value), (path, str(err.value))


def without_contract(onnx_path, folder, fmt):
    """A copy of an exported file with no contract in its metadata (as hdm-export wrote them before), beside its
    .json with the format `fmt` and the copy's digest."""
    import onnx
    graph = onnx.load(onnx_path)
    del graph.metadata_props[:]
    data = graph.SerializeToString()
    meta = json.loads(open(onnx_path[:-5] + ".json").read())
    (folder / "old.onnx").write_bytes(data)
    (folder / "old.json").write_text(json.dumps({**meta, "format": fmt, "sha256": hashlib.sha256(data).hexdigest()}))
    return folder / "old.onnx"


def test_a_file_of_an_earlier_export_is_refused_with_a_line_saying_to_export_again(exported, tmp_path, capsys):
    path = without_contract(exported("dcp")[0], tmp_path, "hdm-onnx/1")
    code, err = predict_on_one_photo(path, tmp_path, capsys)
    assert code == 2 and err == [f"error: --onnx: {tmp_path / 'old.json'}: key 'format': 'hdm-onnx/1' is an earlier "
                                 f"hdm-export's, whose .onnx file carries no copy of its input contract; export the "
                                 f"model again"]
    path = without_contract(exported("dcp")[0], tmp_path, "hdm-onnx/2")
    code, err = predict_on_one_photo(path, tmp_path, capsys)
    assert code == 2 and err == [f"error: --onnx: {path}: carries no copy of its input contract (an earlier "
                                 f"hdm-export's file, or not hdm-export's); export the model again"]


def test_onnx_runtimes_own_log_never_reaches_the_terminal(hdm_description, tmp_path):
    """hdm-predict --onnx in a process, on a graph made here that warns when it loads (an unused initializer)
    and fails inside ONNX Runtime on one of two images (image + its transpose: only a square one broadcasts):
    its stderr is our one line."""
    from onnx import TensorProto, helper
    nodes = [helper.make_node("Transpose", ["image"], ["flipped"], perm=[0, 1, 3, 2]),
             helper.make_node("Add", ["image", "flipped"], ["restored"])]
    unused = helper.make_tensor("unused", TensorProto.FLOAT, [1], [0.0])
    path = handmade(tmp_path, image_only(hdm_description), nodes=nodes, initializers=[unused])
    write_image(tmp_path / "in" / "a.png", hazy_photo("coffee", size=(40, 40))[0])
    write_image(tmp_path / "in" / "b.png", hazy_photo("coffee", size=(40, 52))[0])
    result = subprocess.run([sys.executable, "-m", "hdm.cli.predict", str(tmp_path / "in"), str(tmp_path / "out"),
                             "--onnx", str(path)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1 and sorted(os.listdir(tmp_path / "out")) == ["a.png"], result.stderr
    failed = f"error: {tmp_path / 'in' / 'b.png'}: 52x40: ONNX Runtime failed ("
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(failed), result.stderr


# --- the export's outputs (the .onnx and its .json) never replace an input, even with --overwrite

def test_the_export_never_replaces_its_config_its_base_or_its_weights(tmp_path, capsys):
    """A JSON config (valid YAML) beside the output's .json; a base config of that name; weights of that name."""
    folder = tmp_path / "cfgj"
    folder.mkdir()
    (folder / "dcp.json").write_text(json.dumps({"model": {"type": "DCP"}}))
    (folder / "child.yaml").write_text(yaml.safe_dump({"base": "dcp.json"}))
    (folder / "w.json").write_text("weights, never read")
    cases = [(["-c", str(folder / "dcp.json")], folder / "dcp.onnx", folder / "dcp.json"),
             (["-c", str(folder / "child.yaml")], folder / "dcp.onnx", folder / "dcp.json"),
             (["--weights", str(folder / "w.json")], folder / "w.onnx", folder / "w.json")]
    for args, output, replaced in cases:
        code, err = run_cli(export_cli.main, [str(output), *args, "--overwrite"], capsys)
        assert code == 2 and err == [f"error: {replaced}: an output would replace an input; write to another folder"]
    assert sorted(os.listdir(folder)) == ["child.yaml", "dcp.json", "w.json"]
    assert json.loads((folder / "dcp.json").read_text()) == {"model": {"type": "DCP"}}
    assert (folder / "w.json").read_text() == "weights, never read"


@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config_as=st.sampled_from(SPELLINGS), folder_as=st.sampled_from(SPELLINGS), overwrite=st.booleans())
def test_the_exports_json_never_replaces_the_config_however_either_is_written(tmp_path, capsys, config_as, folder_as,
                                                                              overwrite):
    """The config and the output's folder each written any way (./, //, absolute, relative, a symlink, a hard
    link, ../): refused before any work, with or without --overwrite."""
    folder = tmp_path / "cfgj"
    folder.mkdir(exist_ok=True)
    (folder / "dcp.json").write_text('{"model": {"type": "DCP"}}')
    config = spell(str(folder / "dcp.json"), config_as, tmp_path)
    output = os.path.join(spell(str(folder), folder_as, tmp_path), "dcp.onnx")
    code, err = run_cli(export_cli.main, [output, "-c", config] + ["--overwrite"] * overwrite, capsys)
    assert code == 2 and err == [f"error: {output[:-5]}.json: an output would replace an input; write to another "
                                 f"folder"]
    assert (folder / "dcp.json").read_text() == '{"model": {"type": "DCP"}}' and not (folder / "dcp.onnx").exists()


# --- the export's temporary files: killed, terminated, a full disk

def export_process(folder, prelude=""):
    """hdm-export of DCP into `folder` in another process; `prelude` runs first (limits, signals)."""
    (folder / "dcp.yaml").write_text(yaml.safe_dump({"model": {"type": "DCP"}}))
    code = (f"import runpy, sys\n{prelude}\n"
            f"sys.argv = ['hdm-export', {str(folder / 'dcp.onnx')!r}, '-c', {str(folder / 'dcp.yaml')!r}]\n"
            "runpy.run_module('hdm.cli.export', run_name='__main__')")
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def temporary_of(process, folder):
    """The name of `process`'s temporary file in `folder`, once it is there (the export is then tracing)."""
    while True:
        names = [n for n in os.listdir(folder) if (m := TEMPORARY.fullmatch(n)) and m["pid"] == str(process.pid)]
        if names:
            return names[0]
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)


def test_a_killed_exports_temporary_file_goes_with_the_next_export_and_sigterm_leaves_none(tmp_path):
    first = export_process(tmp_path)
    stale = temporary_of(first, tmp_path)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert stale in os.listdir(tmp_path)  # SIGKILL cannot be caught
    second = export_process(tmp_path)
    temporary_of(second, tmp_path)
    assert stale not in os.listdir(tmp_path)  # the second export's first write into the folder removed it
    second.send_signal(signal.SIGTERM)
    _, err = second.communicate()
    assert second.returncode == 128 + signal.SIGTERM
    assert err.splitlines() == ["stopped by SIGTERM before it finished; nothing partial was left"]
    assert sorted(os.listdir(tmp_path)) == ["dcp.yaml"]


def test_a_full_disk_during_the_export_names_the_file_and_leaves_nothing(tmp_path):
    """Files are limited to 20 kB (RLIMIT_FSIZE; writes beyond fail with EFBIG as on a full disk): the
    export fails in one line naming the .onnx file, and leaves neither file nor temporary file."""
    limit = ("import resource, signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
             "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, resource.RLIM_INFINITY))")
    process = export_process(tmp_path, limit)
    _, err = process.communicate()
    assert process.returncode == 1
    assert err.splitlines() == [f"error: {tmp_path / 'dcp.onnx'}: could not be written (File too large); nothing "
                                f"written (--debug shows the traceback)"]
    assert sorted(os.listdir(tmp_path)) == ["dcp.yaml"]
