"""The description hdm-export writes beside an .onnx file (<name>.json), and what OnnxModel verifies
before it runs any image: every key the loader uses is present with the right type (check_description),
the file's bytes have the recorded sha256 (check_digest), the description's contract (CONTRACT: how the
graph is fed and read) is the one the file was exported with (check_contract: hdm-export embeds a copy in
the file's metadata, so the sha256 covers it), and the graph's inputs and outputs have the contract's
names, ranks, element types and fixed sizes (check_graph). Each failure is a ValueError of one line naming
the file and, for the description, the key.
"""
import hashlib
import inspect
import json
import math
import os
import re

from hdm.deploy.dcp_masks import region_masks
from hdm.errors import shown
from hdm.files import open_input

FORMAT = "hdm-onnx/2"
EARLIER_FORMATS = ("hdm-onnx/1",)  # their .onnx files carry no copy of the contract
CONTRACT = ("format", "inputs", "outputs", "masks", "max_side")  # the keys that decide how the graph is fed and read
CONTRACT_KEY = "hdm.contract"  # the ONNX file's metadata_props entry that holds its copy of the contract
RANK = 4  # every tensor of the contract is (1, C, H, W)
ELEMENT_TYPES = {"float32": "tensor(float)"}  # what the loader feeds and reads: JSON's name, ONNX Runtime's
TENSORS = {"inputs": ["image"], "outputs": ["restored"]}  # the names the loader uses; "masks" when masks is set
MASK_OPTIONS = {name: p.default for name, p in inspect.signature(region_masks).parameters.items()
                if p.default is not inspect.Parameter.empty}


def sidecar_path(path):
    return os.path.splitext(path)[0] + ".json"


def contract(meta):
    """The CONTRACT keys of a description as JSON text: what hdm-export embeds in the ONNX file (CONTRACT_KEY)."""
    return json.dumps({key: meta[key] for key in CONTRACT}, sort_keys=True)


def read_description(path):
    """The checked description beside the ONNX file `path` (see check_description)."""
    meta_path = sidecar_path(path)
    try:
        with open_input(meta_path) as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{shown(meta_path)}: missing; hdm-export writes it beside the .onnx file "
                         f"(the input contract)") from None
    except (OSError, ValueError, RecursionError) as err:  # ValueError: not UTF-8, not JSON
        reason = "nested too deep" if isinstance(err, RecursionError) else str(err).splitlines()[0][:160]
        raise ValueError(f"{shown(meta_path)}: not readable JSON ({reason})") from err
    return check_description(meta, meta_path)


def _value(value):
    """A JSON value in a message: its type as JSON names it, and the value when it is short."""
    kind = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)
    text = json.dumps(value) if isinstance(value, (bool, int, float, str)) else ""
    return f"{kind} ({text})" if text and len(text) <= 40 else kind


def _field(obj, key, where, name, expected, valid):
    """obj[key] when present and valid(value); else a ValueError naming the key `name` and the file."""
    if key not in obj:
        raise ValueError(f"{where}: key {name!r} is missing (expected {expected})")
    if not valid(obj[key]):
        raise ValueError(f"{where}: key {name!r}: expected {expected}, got {_value(obj[key])}")
    return obj[key]


def _is_int(value):
    return type(value) is int


def _is_dimension(value):
    """A described dimension: a fixed size (a positive integer) or the name of a free one."""
    return type(value) is str or (_is_int(value) and value >= 1)


def _option_rule(default):
    """(expected, valid) of a region_masks option: the type of its default; sizes and scales positive."""
    if type(default) is bool:
        return "true or false", lambda v: type(v) is bool
    if type(default) is int:
        return "a positive integer", lambda v: _is_int(v) and v >= 1
    if type(default) is float:
        return "a positive number", lambda v: type(v) in (int, float) and math.isfinite(v) and v > 0
    return "a string", lambda v: type(v) is str


def _check_tensors(meta, side, names, where):
    """The descriptions of meta[side] ('inputs' or 'outputs'): objects with a name, a shape of RANK
    dimensions (positive integers, or names of free sizes) and dtype float32, named `names`."""
    tensors = _field(meta, side, where, side, f"an array of the tensors {names}", lambda v: type(v) is list)
    for i, tensor in enumerate(tensors):
        key = f"{side}[{i}]"
        if type(tensor) is not dict:
            raise ValueError(f"{where}: key {key!r}: expected an object with name, shape and dtype, got "
                             f"{_value(tensor)}")
        _field(tensor, "name", where, f"{key}.name", "a string", lambda v: type(v) is str)
        _field(tensor, "shape", where, f"{key}.shape",
               f"an array of {RANK} dimensions (positive integers, or names of free sizes)",
               lambda v: type(v) is list and len(v) == RANK and all(map(_is_dimension, v)))
        _field(tensor, "dtype", where, f"{key}.dtype", " or ".join(map(repr, ELEMENT_TYPES)),
               lambda v: type(v) is str and v in ELEMENT_TYPES)
    if sorted(t["name"] for t in tensors) != sorted(names):
        raise ValueError(f"{where}: key {side!r}: expected the tensors {names}, got {[t['name'] for t in tensors]}")
    return {t["name"]: t for t in tensors}


def check_description(meta, meta_path):
    """`meta` when it holds every key the loader uses, each with the right type; ValueError of one line
    naming the key and `meta_path` otherwise."""
    where = shown(meta_path)
    if type(meta) is not dict:
        raise ValueError(f"{where}: expected a JSON object (hdm-export's description), got {_value(meta)}")
    if meta.get("format") in EARLIER_FORMATS:
        raise ValueError(f"{where}: key 'format': {meta['format']!r} is an earlier hdm-export's, whose .onnx file "
                         f"carries no copy of its input contract; export the model again")
    _field(meta, "format", where, "format", f"{FORMAT!r} (an hdm-export description)", lambda v: v == FORMAT)
    _field(meta, "sha256", where, "sha256", "the .onnx file's sha256 (64 hexadecimal digits)",
           lambda v: type(v) is str and re.fullmatch("[0-9a-f]{64}", v) is not None)
    _field(meta, "max_side", where, "max_side", "a positive integer or null",
           lambda v: v is None or (_is_int(v) and v >= 1))
    masks = _field(meta, "masks", where, "masks", "null or an object with 'options'",
                   lambda v: v is None or type(v) is dict)
    inputs = TENSORS["inputs"]
    if masks is not None:
        options = _field(masks, "options", where, "masks.options", "an object of region_masks's arguments",
                         lambda v: type(v) is dict)
        for key in options:
            name = f"masks.options.{key}"
            if key not in MASK_OPTIONS:
                raise ValueError(f"{where}: key {name!r}: not an argument of hdm.deploy.dcp_masks.region_masks "
                                 f"({', '.join(MASK_OPTIONS)})")
            _field(options, key, where, name, *_option_rule(MASK_OPTIONS[key]))
        inputs = inputs + ["masks"]
    described = _check_tensors(meta, "inputs", inputs, where)
    _check_tensors(meta, "outputs", TENSORS["outputs"], where)
    if masks is not None:
        regions = masks["options"].get("num_regions", MASK_OPTIONS["num_regions"])
        if described["masks"]["shape"][1] != regions:
            raise ValueError(f"{where}: key 'inputs': the masks have {described['masks']['shape'][1]} regions in "
                             f"dimension 1, masks.options.num_regions is {regions}")
    return meta


def check_digest(data, meta, path, meta_path):
    """ValueError unless the bytes `data` of the ONNX file `path` have the sha256 its description records."""
    if hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise ValueError(f"{shown(path)}: its sha256 is not the one {shown(meta_path)} records: the file was changed "
                         f"after export, or the .json belongs to another export")


MISSING = object()


def _brief(text, limit=60):
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _difference(ours, theirs, key=""):
    """(key, our value, their value) at the first place two JSON values differ (types included), or None."""
    if type(ours) is dict and type(theirs) is dict:
        for name in sorted(set(ours) | set(theirs)):
            where = f"{key}.{name}" if key else name
            if name not in ours or name not in theirs:
                return where, ours.get(name, MISSING), theirs.get(name, MISSING)
            found = _difference(ours[name], theirs[name], where)
            if found:
                return found
        return None
    if type(ours) is list and type(theirs) is list and len(ours) == len(theirs):
        for i, (a, b) in enumerate(zip(ours, theirs)):
            found = _difference(a, b, f"{key}[{i}]")
            if found:
                return found
        return None
    return None if type(ours) is type(theirs) and ours == theirs else (key, ours, theirs)


def check_contract(session, meta, path, meta_path):
    """ValueError unless the description's contract (the CONTRACT keys of `meta`) is, value for value, the
    copy hdm-export embedded in the ONNX file `path` (the graph of the ONNX Runtime `session`)."""
    embedded = session.get_modelmeta().custom_metadata_map.get(CONTRACT_KEY)
    if embedded is None:
        raise ValueError(f"{shown(path)}: carries no copy of its input contract (an earlier hdm-export's file, or not "
                         f"hdm-export's); export the model again")
    try:
        exported = json.loads(embedded)
    except ValueError:
        exported = None
    if type(exported) is not dict:
        raise ValueError(f"{shown(path)}: its copy of the input contract is not a JSON object; export the model again")
    found = _difference(json.loads(contract(meta)), exported)
    if found:
        key, ours, theirs = found
        ours = "missing" if ours is MISSING else _brief(json.dumps(ours))
        theirs = "without it" if theirs is MISSING else f"with {_brief(json.dumps(theirs))}"
        raise ValueError(f"{shown(meta_path)}: key {key!r} is {ours}, but {shown(path)} was exported {theirs}: "
                         f"the .json was changed after export (put hdm-export's back, or export the model again)")


def check_graph(session, meta, path):
    """ValueError unless the graph of the ONNX Runtime `session` has the described inputs and outputs:
    the same names, ranks and element types, and fixed sizes where (and only where) the description has them."""
    for side, actual in (("inputs", session.get_inputs()), ("outputs", session.get_outputs())):
        described = {t["name"]: t for t in meta[side]}
        names = sorted(t.name for t in actual)
        if names != sorted(described):
            raise ValueError(f"{shown(path)}: the graph's {side} are {names}, its description's {sorted(described)}: "
                             f"the .json belongs to another export")
        for tensor in actual:
            want = described[tensor.name]
            if tensor.type != ELEMENT_TYPES[want["dtype"]]:
                raise ValueError(f"{shown(path)}: the graph's {tensor.name!r} is {tensor.type}, its description's "
                                 f"{want['dtype']}")
            shape = ["free" if not _is_int(d) else d for d in tensor.shape]
            wanted = ["free" if not _is_int(d) else d for d in want["shape"]]
            if shape != wanted:
                raise ValueError(f"{shown(path)}: the graph's {tensor.name!r} has the shape {shape}, its description "
                                 f"{wanted}")
