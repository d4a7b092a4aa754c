"""hdm-serve: the Flask routes, and the page end to end in headless Chromium (skipped without one)."""
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import torch
import yaml

pytest.importorskip("flask")

from hdm.image_io import write_image  # noqa: E402
from hdm.models import build_model  # noqa: E402
from hdm.web.app import create_app  # noqa: E402
from tests.helpers import ROOT, hazy_photo  # noqa: E402

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
