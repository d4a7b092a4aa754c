"""hdm-serve: the Flask routes and their JSON errors, the address taken before the models load, the
warning for a page reachable from elsewhere, clients served concurrently (a stalled one delays no one and
is closed after --timeout), and the page end to end in headless Chromium (skipped without one)."""
import concurrent.futures
import io
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import torch
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

pytest.importorskip("flask")

from hdm.cli import UsageError  # noqa: E402
from hdm.cli import serve as serve_cli  # noqa: E402
from hdm.cli.serve import listen, reachable_from_elsewhere  # noqa: E402
from hdm.image_io import write_image  # noqa: E402
from hdm.models import build_model  # noqa: E402
from hdm.web.app import create_app  # noqa: E402
from tests.helpers import ROOT, hazy_photo, run_cli  # noqa: E402

HDM_SMALL = {"type": "HDM", "dim": 16, "groups": 1, "blocks_per_group": 1}


@pytest.fixture(scope="module")
def app():
    torch.manual_seed(0)
    models = [build_model(HDM_SMALL).eval(), build_model({"type": "DCP"}).eval()]
    return create_app(models, ["hdm.pth", "dcp.yaml"], torch.device("cpu"), tile=128, max_upload_mb=1).test_client()


def png_bytes(img):
    import cv2
    return cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes()


def test_routes(app):
    assert [m["type"] for m in app.get("/models").get_json()] == ["HDM", "DCP"]
    img, _ = hazy_photo("coffee", size=(150, 203))
    reply = app.post("/restore", data={"model": "0", "image": (io.BytesIO(png_bytes(img)), "coffee.png")})
    data = reply.get_json()
    assert reply.status_code == 200 and data["size"] == [203, 150] and data["tiled"]  # longer side 203 > tile 128
    assert set(data["maps"]) == {"dark_channel", "transmission", "regions"} and data["name"] == "coffee_restored.png"
    assert data["output"].startswith("data:image/png;base64,")


def test_bad_uploads_are_one_line(app):
    cases = [({"model": "0", "image": (io.BytesIO(b"not an image"), "notes.txt")}, 400, "notes.txt: not a readable image"),
             ({"model": "0", "image": (io.BytesIO(b""), "empty.png")}, 400, "empty.png: empty file"),
             ({"model": "7", "image": (io.BytesIO(b"x"), "a.png")}, 400, "model '7': no such model (0 to 1)"),
             ({"model": "0"}, 400, "no image"),
             ({"model": "0", "image": (io.BytesIO(bytes(2 * 1024 * 1024)), "big.png")}, 413, "larger than the limit of 1 MB")]
    bomb = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + (65535).to_bytes(4, "big") * 2 + bytes.fromhex("0802000000")
    cases.append(({"model": "0", "image": (io.BytesIO(bomb + bytes(40)), "bomb.png")}, 400, "bomb.png"))
    for form, status, text in cases:
        reply = app.post("/restore", data=form)
        error = reply.get_json()["error"]
        assert reply.status_code == status and text in error and "\n" not in error and "/tmp" not in error, (text, error)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser():
    """(chromium, chromedriver) from the system's packages, or a skip with the reason."""
    pytest.importorskip("selenium", reason="selenium is not installed")
    paths = [shutil.which(n) for n in ("chromium", "chromedriver")]
    if not all(paths):
        pytest.skip("no chromium and chromedriver (Debian: apt-get install chromium chromium-driver)")
    return paths


def test_the_page_in_a_real_browser(tmp_path):
    """Upload a photo and a bad file, wait for the results: the restored image has the photo's size,
    the photo's card shows no error, the bad file one message. HDM_SCREENSHOT=path keeps a screenshot."""
    chromium, chromedriver = browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    torch.manual_seed(0)
    torch.save({"model": build_model(HDM_SMALL).state_dict(), "config": {"model": HDM_SMALL}}, tmp_path / "hdm_small.pth")
    (tmp_path / "dcp.yaml").write_text(yaml.safe_dump({"model": {"type": "DCP"}}))
    img, _ = hazy_photo("chelsea", size=(241, 319))
    write_image(tmp_path / "hazy_cat.png", img)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole JPEG")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "hdm.cli.serve", str(tmp_path / "hdm_small.pth"), str(tmp_path / "dcp.yaml"),
                               "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1400"):
        options.add_argument(flag)
    driver = None
    try:
        for _ in range(100):  # the server is up when it lists its models
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/models", timeout=1)
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                time.sleep(0.2)
        driver = webdriver.Chrome(service=Service(chromedriver), options=options)
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 120)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 2)
        assert "hdm_small.pth (HDM)" in driver.find_element(By.ID, "model").text
        driver.find_element(By.ID, "files").send_keys(f"{tmp_path / 'hazy_cat.png'}\n{tmp_path / 'broken.jpg'}")
        driver.find_element(By.ID, "go").click()
        wait.until(lambda d: d.find_element(By.ID, "status").text == "done")
        output = driver.find_element(By.CSS_SELECTOR, ".result img.output")
        wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", output))
        size = driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", output)
        assert size == [319, 241]
        result = driver.find_element(By.CSS_SELECTOR, ".result")
        assert not result.find_elements(By.CSS_SELECTOR, ".error")
        assert {e.get_attribute("alt") for e in result.find_elements(By.CSS_SELECTOR, ".maps img")} == \
            {"dark_channel", "transmission", "regions"}
        assert result.find_element(By.CSS_SELECTOR, "a.download").get_attribute("download") == "hazy_cat_restored.png"
        errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".error")]
        assert len(errors) == 1 and errors[0].startswith("broken.jpg:") and "\n" not in errors[0]
        driver.execute_script("const s = document.querySelector('.slider'); s.value = 35; s.dispatchEvent(new Event('input'));")
        assert "35%" in output.value_of_css_property("clip-path")
        result.find_element(By.CSS_SELECTOR, ".side-by-side-toggle").click()  # the two images next to each other
        before = result.find_element(By.CSS_SELECTOR, "img.before")
        assert output.value_of_css_property("clip-path") == "none" and output.location["x"] > before.location["x"] + 10
        if os.environ.get("HDM_SCREENSHOT"):
            driver.save_screenshot(os.environ["HDM_SCREENSHOT"])
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)


def test_a_failure_while_restoring_is_one_line_on_the_page(app, monkeypatch):
    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory\nmore")
    monkeypatch.setattr("hdm.web.app.restore", no_memory)
    img, _ = hazy_photo("coffee", size=(60, 80))
    reply = app.post("/restore", data={"model": "1", "image": (io.BytesIO(png_bytes(img)), "big.png")})
    assert reply.status_code == 500
    assert reply.get_json()["error"].startswith("big.png: could not restore it (") and "\n" not in reply.get_json()["error"]


SETTINGS = settings(deadline=None, database=None, max_examples=40)
ROUTES = {("GET", "/"), ("GET", "/models"), ("POST", "/restore")}


@SETTINGS
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
       path=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="?#"), max_size=12))
def test_every_error_of_every_route_is_json(app, method, path):
    """Any method on any path that is not a route answers JSON with one line (404, or 405 with Allow)."""
    path = "/" + path
    reply = app.open(path, method=method)
    if (method, path) in ROUTES or (method, reply.request.path) in ROUTES:
        return
    assert reply.status_code in (404, 405) and reply.content_type == "application/json"
    error = reply.get_json()["error"]
    assert error.startswith(f"{method} /") and "\n" not in error
    assert "the routes: GET /, GET /models, POST /restore" in error
    assert (reply.status_code == 405) == ("Allow" in reply.headers)


def test_an_unexpected_failure_is_json_500_and_one_line_in_the_log(caplog):
    """A model that is not callable fails with a TypeError inside the route: JSON, no traceback."""
    client = create_app([object()], ["broken"], torch.device("cpu")).test_client()
    img, _ = hazy_photo("coffee", size=(20, 24))
    reply = client.post("/restore", data={"model": "0", "image": (io.BytesIO(png_bytes(img)), "a.png")})
    assert reply.status_code == 500 and reply.content_type == "application/json"
    assert reply.get_json()["error"] == "POST /restore: the server failed (TypeError: 'object' object is not callable)"
    assert [r.getMessage() for r in caplog.records] == [reply.get_json()["error"]] and not caplog.records[0].exc_info


def test_a_model_whose_output_is_not_finite_answers_an_error_not_an_image():
    torch.manual_seed(0)
    model = build_model(HDM_SMALL).eval()
    with torch.no_grad():
        next(model.parameters())[0].fill_(float("nan"))
    client = create_app([model], ["nan.pth"], torch.device("cpu")).test_client()
    img, _ = hazy_photo("coffee", size=(40, 48))
    reply = client.post("/restore", data={"model": "0", "image": (io.BytesIO(png_bytes(img)), "cat.png")})
    assert reply.status_code == 500 and set(reply.get_json()) == {"error"}
    error = reply.get_json()["error"]
    assert error.startswith("cat.png: the model nan.pth gave values that are not finite (") and \
        error.endswith("output values are NaN or infinite); its weights may be broken")


@SETTINGS
@given(ip=st.ip_addresses())
def test_only_loopback_addresses_are_kept_from_other_machines(ip):
    mapped = getattr(ip, "ipv4_mapped", None)
    assert reachable_from_elsewhere(str(ip)) == (not (mapped or ip).is_loopback)


def this_machines_networks():
    """The IPv4 networks this machine's kernel binds to: its local and broadcast routes (/proc/net/fib_trie)."""
    networks, address = set(), None
    with open("/proc/net/fib_trie") as f:
        for line in f:
            text = line.strip()
            if text.startswith("|-- "):
                address = text[4:]
            elif text.startswith("/") and text.split()[-1] in ("LOCAL", "BROADCAST"):
                networks.add(ipaddress.ip_network(f"{address}/{text.split()[0][1:]}", strict=False))
    return networks


@pytest.mark.skipif(not os.path.exists("/proc/net/fib_trie"), reason="this machine's addresses are read from Linux's "
                                                                     "/proc/net/fib_trie")
@SETTINGS
@given(ip=st.ip_addresses(v=4, network="192.0.2.0/24") | st.ip_addresses(v=4, network="198.51.100.0/24")
       | st.ip_addresses(v=4, network="203.0.113.0/24"))
def test_an_address_of_another_machine_is_refused(ip):
    """Addresses reserved for documentation (RFC 5737), less those this machine has (some sandboxes use them)."""
    assume(not any(ip in network for network in this_machines_networks()))
    with pytest.raises(UsageError, match=f"^--host {ip} --port 8000: {ip} is not an address of this machine"):
        listen(str(ip), 8000)


def serve(argv):
    return subprocess.run([sys.executable, "-m", "hdm.cli.serve", *argv], cwd=ROOT, capture_output=True, text=True)


def test_the_address_is_checked_before_any_model_loads(tmp_path):
    """A port in use and a host that does not resolve are one line and exit code 2, though the checkpoint
    given is not even readable: the address comes first."""
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve([str(tmp_path / "broken.pth"), "--port", str(port)])
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [f"error: --host 127.0.0.1 --port {port}: the port is in use on 127.0.0.1 "
                                          f"(another server?); choose another --port"]
    result = serve([str(tmp_path / "broken.pth"), "--host", "no-such-host.invalid"])
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: --host no-such-host.invalid: does not resolve to an address")
    result = serve([str(tmp_path / "broken.pth"), "--port", str(free_port())])  # then the checkpoint
    assert result.returncode == 2 and "broken.pth" in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_page_open_to_other_machines_is_warned_of_and_served_on_the_socket_taken(tmp_path):
    (tmp_path / "dcp.yaml").write_text(yaml.safe_dump({"model": {"type": "DCP"}}))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "hdm.cli.serve", str(tmp_path / "dcp.yaml"), "--host", "0.0.0.0",
                               "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        assert server.stderr.readline() == (f"warning: hdm-serve: --host 0.0.0.0 (0.0.0.0): the page is reachable "
                                            f"from other machines and has no authentication: whoever reaches port "
                                            f"{port} can use it (--host 127.0.0.1 keeps it to this machine)\n")
        assert server.stdout.readline() == f"hdm-serve: 1 model(s) on cpu; open http://127.0.0.1:{port}\n"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/models", timeout=30) as reply:
            assert [m["type"] for m in json.load(reply)] == ["DCP"]
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=30)
        assert missing.value.code == 404 and json.load(missing.value)["error"].startswith("GET /nope: no such page")
        for request, status in ((b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101, 431), (b"NOT HTTP AT ALL", 400)):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:  # the server's own errors
                raw.sendall(request + b"\r\n\r\n")
                reply = raw.makefile("rb").read()
            body = reply.partition(b"\r\n\r\n")[2] if reply.startswith(b"HTTP/") else reply  # HTTP/0.9: no head
            assert json.loads(body)["error"].startswith(f"{status} ")
            assert reply.startswith(b"{") or b"Content-Type: application/json" in reply
    finally:
        server.terminate()
        server.communicate(timeout=30)


# --- one slow or stalled client never blocks the others

STALL_TIMEOUT = 8  # hdm-serve --timeout of the server below: long enough for the requests of a busy machine


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """hdm-serve (DCP) in its own process with --timeout STALL_TIMEOUT: its port, once it answers."""
    folder = tmp_path_factory.mktemp("live")
    (folder / "dcp.yaml").write_text(yaml.safe_dump({"model": {"type": "DCP"}}))
    port = free_port()
    with open(folder / "log", "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "hdm.cli.serve", str(folder / "dcp.yaml"), "--port", str(port),
                                   "--timeout", str(STALL_TIMEOUT)], cwd=ROOT, stdout=log, stderr=log)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/models", timeout=5).close()
                break
            except OSError:
                assert server.poll() is None, (folder / "log").read_text()
                time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def restore_request(image, name=b"cat.png"):
    """The bytes of a whole POST /restore of `image` (RGB uint8) with DCP (model 0), as a browser sends it."""
    body = (b'--XX\r\nContent-Disposition: form-data; name="model"\r\n\r\n0\r\n--XX\r\nContent-Disposition: form-data; '
            b'name="image"; filename="' + name + b'"\r\nContent-Type: image/png\r\n\r\n' + png_bytes(image) +
            b"\r\n--XX--\r\n")
    return (f"POST /restore HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=XX\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def exchange(port, request, timeout):
    """The whole reply of the server to `request` on a connection of its own."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as client:
        client.sendall(request)
        return receive_all(client)


def receive_all(client):
    chunks = []
    while chunk := client.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def reply_json(reply):
    head, _, body = reply.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], json.loads(body)


@settings(max_examples=25, deadline=None, database=None)
@given(data=st.data())
def test_a_client_stalled_anywhere_in_its_request_delays_no_one(live_server, data):
    """A client sends any prefix of an upload (nothing at all, part of the request line or headers, part of
    the body) and stops: another client's whole upload is restored meanwhile."""
    request = restore_request(hazy_photo("coffee", size=(24, 30))[0])
    cut = data.draw(st.integers(0, len(request) - 1))
    with socket.create_connection(("127.0.0.1", live_server)) as stalled:
        stalled.sendall(request[:cut])
        status, answer = reply_json(exchange(live_server, request, timeout=STALL_TIMEOUT / 2))
        assert status == b"HTTP/1.1 200 OK" and answer["size"] == [30, 24]


def test_a_stalled_upload_delays_no_one_and_is_closed_after_the_timeout(live_server):
    """One client stops in the middle of its upload's body, another in its request line: the page is listed
    and two uploads are restored at once meanwhile; after --timeout the first gets a 408, the second is closed."""
    port = live_server
    request = restore_request(hazy_photo("chelsea", size=(40, 52))[0])
    address = ("127.0.0.1", port)
    with socket.create_connection(address) as in_body, socket.create_connection(address) as in_line:
        in_body.sendall(request[:len(request) - 100])
        in_line.sendall(request[:12])
        stalled_since = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/models", timeout=STALL_TIMEOUT / 2) as reply:
            assert [m["type"] for m in json.load(reply)] == ["DCP"]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(lambda _: reply_json(exchange(port, request, STALL_TIMEOUT / 2)), range(2)))
        assert [(status, answer["size"]) for status, answer in replies] == [(b"HTTP/1.1 200 OK", [52, 40])] * 2
        in_body.settimeout(STALL_TIMEOUT + 30)
        status, answer = reply_json(receive_all(in_body))
        assert time.monotonic() - stalled_since >= STALL_TIMEOUT - 0.5
        assert status == b"HTTP/1.1 408 REQUEST TIMEOUT" and answer == {
            "error": "POST /restore: the request stopped arriving (nothing came within the server's timeout); send it "
                     "again"}
        in_line.settimeout(STALL_TIMEOUT + 30)
        assert receive_all(in_line) == b""


@settings(max_examples=20, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(timeout=st.floats(max_value=0) | st.sampled_from([float("nan"), float("inf")]))
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_refused(capsys, timeout):
    code, err = run_cli(serve_cli.main, ["dcp.yaml", f"--timeout={timeout}"], capsys)
    assert code == 2 and err == [f"error: --timeout {timeout}: expected a number of seconds above 0"]
