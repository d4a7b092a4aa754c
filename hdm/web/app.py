"""The Flask application behind hdm-serve.

GET /           the page (index.html: model choice, upload, before/after slider, maps, download)
GET /models     [{"id", "label", "type", "maps"}] of the models given on the command line
POST /restore   form fields `model` (an id) and `image` (a file) -> {"output", "maps", "seconds", "size"}:
                PNG data URLs; a bad request is {"error": one line} with status 400 (413 above the size
                limit)

Requests may come from several threads at once (hdm-serve serves each in its own); the models run one
image at a time, under a lock taken only once an upload has arrived whole.

Every error of every route is JSON {"error": one line}, never an HTML page or a traceback: 404 and 405
name the routes, other HTTP errors say their name, a model whose output is not finite is a 500 naming
the upload and the model, and any other exception a 500 with its first line (logged on the server).
"""
import base64
import json
import os
import threading
import time
from importlib import resources

import torch
from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from hdm.cli import first_line
from hdm.errors import NonFiniteOutput, shown
from hdm.image_io import decode_rgb, encode_image
from hdm.inference import colour_maps, restore

ROUTES = "GET /, GET /models, POST /restore"


def png_data_url(rgb):
    """RGB (H, W, 3), uint8 or float in [0, 1] (array or tensor), as a data: URL of a PNG."""
    return "data:image/png;base64," + base64.b64encode(encode_image(rgb)).decode("ascii")


def decode_upload(name, data):
    """RGB (H, W, 3) of uploaded bytes, decoded from memory with every check hdm-predict applies to a file
    (a complete image of a known format, under the pixel limit and the memory available, before
    decoding); ValueError with one line naming the upload otherwise."""
    if not data:
        raise ValueError(f"{shown(name)}: empty file")
    try:
        return decode_rgb(data, name)
    except OSError as err:
        raise ValueError(str(err)) from err


def create_app(models, labels, device, tile=1024, overlap=48, max_upload_mb=50):
    """models: restoring models (eval mode on `device`); labels: one name each, shown on the page."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_upload_mb * 1024 * 1024
    page = resources.files("hdm.web").joinpath("index.html").read_text(encoding="utf-8")
    one_at_a_time = threading.Lock()  # the models' memory is needed once, not once per client

    @app.get("/")
    def index():
        return page.replace("{{MAX_UPLOAD_MB}}", str(max_upload_mb))

    @app.get("/models")
    def list_models():
        return jsonify([{"id": i, "label": label, "type": type(m).__name__, "maps": hasattr(m, "maps")}
                        for i, (m, label) in enumerate(zip(models, labels))])

    @app.errorhandler(413)
    def too_large(_):
        return jsonify(error=f"the upload is larger than the limit of {max_upload_mb} MB (--max-upload-mb)"), 413

    @app.errorhandler(HTTPException)
    def http_error(err):
        """The error as JSON with its status and headers (Allow, for 405); a request body that stopped
        arriving (werkzeug's ClientDisconnected of a read that timed out) is a 408."""
        where = f"{request.method} {shown(request.path)}"
        response = err.get_response()
        if err.code in (404, 405):
            message = f"{where}: {'no such page' if err.code == 404 else 'not allowed'} (the routes: {ROUTES})"
        elif isinstance(err.__context__, TimeoutError):
            message = f"{where}: the request stopped arriving (nothing came within the server's timeout); send it again"
            response.status_code = 408
        else:
            message = f"{where}: {err.name} ({first_line(err.description or err.name)})"
        response.set_data(json.dumps({"error": message}))
        response.content_type = "application/json"
        return response

    @app.errorhandler(Exception)
    def unexpected(err):
        message = f"{request.method} {shown(request.path)}: the server failed ({type(err).__name__}: {first_line(err)})"
        app.logger.error(message)
        return jsonify(error=message), 500

    @app.post("/restore")
    def restore_upload():
        upload = request.files.get("image")
        try:
            raw = request.form.get("model", "0")
            index = int(raw) if raw.isdigit() else -1
            if not 0 <= index < len(models):
                raise ValueError(f"model {raw!r}: no such model (0 to {len(models) - 1})")
            if upload is None:
                raise ValueError("no image in the request")
            name = shown(os.path.basename(upload.filename or "upload"))
            rgb = decode_upload(name, upload.read())
        except ValueError as err:
            return jsonify(error=first_line(err)), 400
        model = models[index]
        h, w = rgb.shape[:2]
        try:
            with one_at_a_time, torch.inference_mode():
                start = time.perf_counter()  # the time of this image alone, not of the wait for the lock
                lq = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).to(device)  # uint8, or float (16-bit files)
                out = restore(model, lq, tile=tile if max(h, w) > tile else None, overlap=overlap)
                seconds = time.perf_counter() - start
                maps = {}
                if hasattr(model, "maps"):
                    x = lq.float() / 255 if lq.dtype == torch.uint8 else lq
                    maps = {k: png_data_url(v) for k, v in colour_maps(model.maps(x), (h, w)).items()}
        except NonFiniteOutput as err:
            return jsonify(error=f"{name}: the model {labels[index]} gave values that are not finite ({err}); its "
                                 f"weights may be broken"), 500
        except (RuntimeError, ValueError) as err:  # out of memory, above all
            return jsonify(error=f"{name}: could not restore it ({first_line(err)[:160]})"), 500
        return jsonify(output=png_data_url(out[0].permute(1, 2, 0).float()), maps=maps, seconds=round(seconds, 3), size=[w, h],
                       tiled=max(h, w) > tile, name=os.path.splitext(name)[0] + "_restored.png")

    return app
