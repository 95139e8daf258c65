"""`make lab` starts JupyterLab; a kernel of the course executes a cell; slides open through it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from sweatlab.course import slides
from sweatlab.tools.cli import lab_command
from sweatlab.course import KERNEL_NAME

from browser import artifact, browser_page
from conftest import FIXTURES, REPO, skip_or_fail

pytestmark = pytest.mark.slow
STAMP = REPO / ".venv" / ".sweat-installed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def _execute(ws, code: str, timeout_s: float = 60.0) -> str:
    """Send an execute_request over the kernel websocket; return the stdout it printed."""
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True,
                    "user_expressions": {}, "allow_stdin": False},
    }))
    out, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["header"]["msg_type"]
        if kind == "stream":
            out.append(msg["content"]["text"])
        elif kind == "error":
            raise AssertionError("kernel error: " + "\n".join(msg["content"]["traceback"]))
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(out)
    raise AssertionError(f"no reply from the kernel in {timeout_s} s")


@pytest.fixture
def lab_server(tmp_path):
    """`make lab` on a free loopback port, with a scratch HOME; stopped (whole process group) after."""
    if not STAMP.exists():
        skip_or_fail("the course is not installed with `make` (no .venv/.sweat-installed)")
    port, token = _free_port(), uuid.uuid4().hex
    env = {**os.environ, "HOME": str(tmp_path / "home"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "PYTHONUNBUFFERED": "1"}
    env.pop("DISPLAY", None)
    lab_args = f"--port={port} --ServerApp.ip=127.0.0.1 --IdentityProvider.token={token} --ServerApp.port_retries=0"
    log = open(tmp_path / "lab.log", "w")
    started = time.monotonic()
    proc = subprocess.Popen(["make", "-s", "lab", f"LAB_ARGS={lab_args}"], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail("make lab exited early:\n" + (tmp_path / "lab.log").read_text()[-3000:])
            try:
                if _get(f"{base}/api/status?token={token}")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("JupyterLab did not answer in 90 s:\n" + (tmp_path / "lab.log").read_text()[-3000:])
            time.sleep(0.5)
        yield {"base": base, "token": token, "port": port, "log": tmp_path / "lab.log",
               "startup_s": time.monotonic() - started}
    finally:
        _stop_group(proc)
        log.close()


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop make, JupyterLab and its kernels: the whole process group, politely first."""
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # kernels that outlived the server
    except ProcessLookupError:
        pass


def test_make_lab_serves_jupyterlab_and_a_course_kernel_runs_a_cell(lab_server):
    import websocket

    base, token = lab_server["base"], lab_server["token"]
    status, page = _get(f"{base}/lab?token={token}")
    assert status == 200 and b"JupyterLab" in page
    _, specs = _get(f"{base}/api/kernelspecs?token={token}")
    assert KERNEL_NAME in json.loads(specs)["kernelspecs"], "make setup did not register the course kernel"
    request = urllib.request.Request(f"{base}/api/kernels?token={token}", method="POST",
                                     data=json.dumps({"name": KERNEL_NAME}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        kernel = json.loads(response.read())
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{lab_server['port']}/api/kernels/{kernel['id']}/channels?token={token}", timeout=60)
    try:
        out = _execute(ws, "import sys, numpy, sweatlab\nprint(sum(range(10)), sys.prefix)")
    finally:
        ws.close()
    total, prefix = out.split()
    assert total == "45"
    assert Path(prefix).resolve() == (REPO / ".venv").resolve(), "the kernel does not run in the course's .venv"
    assert "--no-browser" in lab_server["log"].read_text() or "http://127.0.0.1" in lab_server["log"].read_text()


def test_a_deck_presents_from_the_running_jupyterlab(lab_server):
    """Decks are presented live from JupyterLab's file server (File browser > Open in New Browser Tab)."""
    deck_dir = REPO / "slides" / "build"
    deck = slides.build_deck(FIXTURES / "slides" / "00_fixture.md", deck_dir / "zz_test_fixture.html")
    try:
        with browser_page(offline=False) as (page, errors):
            page.goto(f"{lab_server['base']}/files/slides/build/{deck.name}?token={lab_server['token']}")
            page.locator("section.slide.active h1").wait_for(state="visible", timeout=15_000)
            assert page.locator("section.slide.active h1").inner_text() == "Fixture deck"
            page.keyboard.press("ArrowRight")
            assert page.locator("section.slide.active h2").inner_text() == "A bullet slide"
            page.screenshot(path=str(artifact("slides_from_jupyterlab.png")))
        assert errors == []
    finally:
        deck.unlink(missing_ok=True)


def test_lab_command_has_no_browser_when_headless_or_root(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    cmd = lab_command(REPO, ["--port=1"])
    if os.name == "posix" and (os.uname().sysname == "Linux" or os.geteuid() == 0):
        assert "--no-browser" in cmd
    assert cmd[-1] == "--port=1" and f"--ServerApp.root_dir={REPO}" in cmd


def test_setup_is_skipped_when_nothing_changed():
    if not STAMP.exists():
        skip_or_fail("the course is not installed with `make`")
    # `make -q` exits 0 when the target is up to date: a second `make lab` installs nothing.
    assert subprocess.run(["make", "-q", ".venv/.sweat-installed"], cwd=REPO).returncode == 0


def test_setup_keeps_jupyterlab_offline():
    if not STAMP.exists():
        skip_or_fail("the course is not installed with `make`")
    overrides = json.loads((REPO / ".venv" / "share" / "jupyter" / "lab" / "settings" / "overrides.json").read_text())
    notification = overrides["@jupyterlab/apputils-extension:notification"]
    assert notification["fetchNews"] == "false" and notification["checkForUpdates"] is False
