"""A local web page that restores photos with the models given here.

    # doc-test: skip (a server; tests/test_serve.py runs it)
    hdm-serve runs/hdm_its/checkpoints/best.pth                        # a checkpoint (its stored config)
    # doc-test: skip (a server; tests/test_serve.py runs it)
    hdm-serve configs/dehaze/hdm_its.yaml:W.pth configs/baselines/dcp_sots.yaml   # CONFIG[:WEIGHTS] too
    # doc-test: skip (a server; tests/test_serve.py runs it)
    hdm-serve W.pth --port 8000 --tile 1024 --max-upload-mb 50 --timeout 60

Open http://127.0.0.1:8000 and choose a model, upload photos, compare with the slider, see HDM's
DCP maps, download the results. It binds to 127.0.0.1 (this machine only) unless --host says
otherwise, and needs nothing from the internet.

Requests are served concurrently, one thread each, and the models run one image at a time (hdm.web.app):
a client that stalls (sends part of a request, or reads no answer) delays no one else, and its connection
is closed after --timeout seconds without progress.

The address is taken before any model loads: a port in use or not allowed, or a host that does not
resolve or is not an address of this machine, is one line and exit code 2; the server then serves on
that same socket. A host other than a loopback address (0.0.0.0, ::, a LAN address) gets a warning: the
page has no authentication.
"""
import errno
import ipaddress
import json
import math
import os
import socket
import sys

from hdm.cli import Parser, UsageError, console, device_name
from hdm.errors import shown


def model_specs(items):
    """'W.pth' -> (None, W.pth); 'C.yaml' -> (C.yaml, None); 'C.yaml:W.pth' -> (C.yaml, W.pth)."""
    specs = []
    for item in items:
        first, _, second = item.partition(":")
        if first.endswith((".yaml", ".yml")):
            specs.append((first, second or None))
        elif second:
            raise UsageError(f"{item}: expected WEIGHTS, CONFIG.yaml or CONFIG.yaml:WEIGHTS")
        else:
            specs.append((None, first))
    return specs


def listen(host, port):
    """A TCP socket listening on host:port (the first address the host resolves to); UsageError of one
    line when it cannot be had."""
    where = f"--host {shown(host)} --port {port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as err:
        reason = err.strerror if isinstance(err, socket.gaierror) else "not a host name"
        raise UsageError(f"--host {shown(host)}: does not resolve to an address ({reason})") from err
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug: a restart right after a stop binds
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        reasons = {errno.EADDRINUSE: f"the port is in use on {address[0]} (another server?); choose another --port",
                   errno.EACCES: "permission denied (ports below 1024 need privileges); choose a port above 1023",
                   errno.EADDRNOTAVAIL: f"{address[0]} is not an address of this machine (127.0.0.1: this machine "
                                        f"only; 0.0.0.0: all its addresses)"}
        raise UsageError(f"{where}: {reasons.get(err.errno, err.strerror or err)}") from err
    return sock


def request_handler(timeout):
    """werkzeug's request handler with a socket timeout of `timeout` seconds on every read and write of a
    connection, whose own errors (a malformed request line, too long a header: before the application
    sees the request) are JSON {"error": one line} like the application's."""
    from werkzeug.serving import WSGIRequestHandler

    class JsonErrors(WSGIRequestHandler):
        error_content_type = "application/json"
        error_message_format = "%(explain)s"  # HTML-escaped by http.server, which leaves JSON's quotes alone

        def send_error(self, code, message=None, explain=None):
            reason = message or self.responses.get(code, ("error",))[0]
            super().send_error(code, message, json.dumps({"error": f"{code} {reason}"}))

    JsonErrors.timeout = timeout  # socketserver.StreamRequestHandler sets it on the connection
    return JsonErrors


def reachable_from_elsewhere(address):
    """Whether a socket bound to `address` (an IP address as getsockname gives it) takes connections
    from other machines: any address but a loopback one."""
    ip = ipaddress.ip_address(address.split("%")[0])  # an IPv6 scope (fe80::1%eth0) is not part of it
    return not (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def page_url(address, port):
    """The page's URL for a socket bound to `address` (this machine's loopback for a wildcard)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if ip.is_unspecified:
        ip = ipaddress.ip_address("::1" if ip.version == 6 else "127.0.0.1")
    return f"http://{f'[{ip}]' if ip.version == 6 else ip}:{port}"


def main(argv=None):
    parser = Parser(__doc__, prog="hdm-serve")
    parser.add_argument("models", nargs="+", help="checkpoints, CONFIG.yaml (parameter-free models) or CONFIG.yaml:WEIGHTS")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--tile", type=int, default=1024, help="photos with a longer side are restored in tiles")
    parser.add_argument("--max-upload-mb", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=60,
                        help="seconds a connection may stall (send or read nothing) before it is closed")
    parser.add_argument("--device", type=device_name, default="auto")
    args = parser.parse(argv)
    if args.tile % 4 or args.tile <= 48:
        raise UsageError(f"--tile {args.tile}: a multiple of 4 above the overlap of 48")
    if not 0 < args.port < 65536 or args.max_upload_mb < 1:
        raise UsageError("--port must be 1..65535 and --max-upload-mb at least 1")
    if not 0 < args.timeout < math.inf:
        raise UsageError(f"--timeout {args.timeout}: expected a number of seconds above 0")
    specs = model_specs(args.models)
    sock = listen(args.host, args.port)
    try:
        address = sock.getsockname()[0]
        if reachable_from_elsewhere(address):
            print(f"warning: hdm-serve: --host {shown(args.host)} ({address}): the page is reachable from other "
                  f"machines and has no authentication: whoever reaches port {args.port} can use it (--host "
                  f"127.0.0.1 keeps it to this machine)", file=sys.stderr, flush=True)
        from werkzeug.serving import make_server

        from hdm.cli.loading import load_models
        from hdm.device import resolve_device
        from hdm.web.app import create_app

        device = resolve_device(args.device)
        models = load_models(specs, device)
        labels = [os.path.basename(w or c) for c, w in specs]
        app = create_app(models, labels, device, tile=args.tile, max_upload_mb=args.max_upload_mb)
        server = make_server(address, args.port, app, threaded=True, request_handler=request_handler(args.timeout),
                             fd=sock.fileno())  # the socket taken above
    finally:
        sock.close()  # the server holds its own duplicate
    print(f"hdm-serve: {len(models)} model(s) on {device}; open {page_url(address, args.port)}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("hdm-serve: stopped", flush=True)
    finally:
        server.server_close()
    return 0


def run():
    console(main)


if __name__ == "__main__":
    run()
