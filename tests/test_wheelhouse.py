"""The offline wheelhouse: platform tags, pip arguments, the manifest, the Makefile switch, and
(end to end, opt-in) a build for this machine installed into a fresh venv with the network cut."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ON_CI, REPO, skip_or_fail
from sweatlab.tools import wheelhouse as W

# --------------------------------------------------------------------------- platform tags and pins


def test_each_target_has_its_platform_tags():
    assert set(W.PLATFORMS) == {"linux", "macos", "windows"}
    linux = W.PLATFORMS["linux"]
    assert linux[0] == "manylinux_2_28_x86_64", "torch's own floor comes first"
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(linux)
    assert all(tag.endswith("_x86_64") for tag in linux)
    assert W.PLATFORMS["macos"] == ("macosx_14_0_arm64",)
    assert W.PLATFORMS["windows"] == ("win_amd64",)


def test_requirements_are_the_pins_the_extras_and_the_build_backend():
    pins, build = W.requirements()
    assert "torch==2.13.0" in pins and "numpy==2.4.6" not in build
    assert any(p.startswith("pytest==") for p in pins), "the test extra is in"
    assert any(b.startswith("setuptools") for b in build)
    assert W.build_requirements(build)[-1] == "wheel"
    assert W.build_requirements(["setuptools>=69", "wheel"]) == ["setuptools>=69", "wheel"]


def test_the_python_310_parser_reads_the_same_pins():
    pins, build = W.requirements()
    import builtins

    real_import = builtins.__import__

    def no_tomllib(name, *args, **kwargs):
        if name == "tomllib":
            raise ModuleNotFoundError(name)
        return real_import(name, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(builtins, "__import__", no_tomllib)
        assert W.requirements() == (pins, build)


def test_linux_takes_the_cpu_torch_and_the_others_the_pypi_one():
    pins = ["numpy==2.4.6", "torch==2.13.0", "tqdm==4.70.1"]
    assert W.platform_pins(pins, "linux") == ["numpy==2.4.6", "torch==2.13.0+cpu", "tqdm==4.70.1"]
    assert W.platform_pins(pins, "macos") == pins
    assert W.platform_pins(pins, "windows") == pins
    assert W.pinned_version(pins, "torch") == "2.13.0"
    with pytest.raises(SystemExit, match="no exact pin"):
        W.pinned_version(pins, "scipy")


def test_pip_download_arguments(tmp_path):
    args = W.pip_download_args("linux", "3.12", tmp_path, ["torch==2.13.0+cpu"], find_links=["here"],
                               extra_index="https://example.org/cpu", no_deps=True,
                               pip_args=["--index-url", "https://mirror"], executable="py")
    assert args[:2] == ["py", "-c"] and args[4] == "download"
    markers = json.loads(args[3])
    assert markers["platform_system"] == "Linux" and markers["python_version"] == "3.12"
    assert "--only-binary=:all:" in args
    assert args[args.index("--implementation") + 1] == "cp"
    assert args[args.index("--python-version") + 1] == "3.12"
    assert args[args.index("--dest") + 1] == str(tmp_path)
    platforms = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert platforms == list(W.PLATFORMS["linux"])
    assert args[args.index("--find-links") + 1] == "here"
    assert args[args.index("--extra-index-url") + 1] == "https://example.org/cpu"
    assert "--no-deps" in args
    assert args[-3:] == ["--index-url", "https://mirror", "torch==2.13.0+cpu"]

    plain = W.pip_download_args("windows", "3.11", tmp_path, ["a==1"])
    assert "--no-deps" not in plain and "--extra-index-url" not in plain and "--find-links" not in plain
    assert [plain[i + 1] for i, a in enumerate(plain) if a == "--platform"] == ["win_amd64"]
    assert json.loads(plain[3])["sys_platform"] == "win32"
    with pytest.raises(SystemExit, match="unknown platform"):
        W.pip_download_args("beos", "3.11", tmp_path, [])
    with pytest.raises(SystemExit, match="not of the form"):
        W.pip_download_args("linux", "311", tmp_path, [])


def test_pip_runs_with_the_target_markers():
    # the bootstrap leans on pip's internals: it must still find them in the pip that runs it
    code = W.PIP_WITH_MARKERS.replace("from pip._internal.cli.main import main\n",
                                      "print(markers.Marker('platform_system == \"Windows\"').evaluate())\n"
                                      "from pip._internal.cli.main import main\n")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(W.MARKERS["windows"]), "--version"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "True" and out[1].startswith("pip ")


def test_command_line():
    args = W.parse_args([])
    assert args.targets == ["linux", "macos", "windows"] and args.pythons == ["3.11"]
    assert args.torch_index == W.TORCH_CPU_INDEX and args.dest == "wheelhouse"
    args = W.parse_args(["--platforms", "windows,linux windows", "--python", "3.11 3.12", "--torch-index", "",
                         "--find-links", "a", "--find-links", "b", "--", "--index-url", "https://mirror"])
    assert args.targets == ["windows", "linux"] and args.pythons == ["3.11", "3.12"]
    assert args.torch_index == "" and args.find_links == ["a", "b"]
    assert args.pip_args == ["--index-url", "https://mirror"]
    with pytest.raises(SystemExit):
        W.parse_args(["--platforms", "solaris"])
    with pytest.raises(SystemExit):
        W.parse_args(["--python", "three"])
    if W.current_target():
        assert W.parse_args(["--platforms", "this"]).targets == [W.current_target()]


def test_pip_output_lines_name_the_wheels(tmp_path):
    script = tmp_path / "fake_pip.py"
    script.write_text(
        "print('Collecting numpy==2.4.6')\n"
        "print('Saved ./wh/numpy-2.4.6-cp311-cp311-win_amd64.whl')\n"
        "print('File was already downloaded /x/wh/tqdm-4.70.1-py3-none-any.whl')\n"
        "print('Successfully downloaded numpy tqdm')\n")
    log = tmp_path / "log"
    with open(log, "w") as f:
        rc, wheels = W.run_pip([sys.executable, str(script)], f)
    assert rc == 0
    assert wheels == ["numpy-2.4.6-cp311-cp311-win_amd64.whl", "tqdm-4.70.1-py3-none-any.whl"]
    assert "Successfully downloaded" in log.read_text()


# --------------------------------------------------------------------------- the manifest


def test_manifest_lists_files_sizes_hashes_and_platforms(tmp_path):
    (tmp_path / "a-1-py3-none-any.whl").write_bytes(b"shared")
    (tmp_path / "b-1-cp311-cp311-win_amd64.whl").write_bytes(b"windows only")
    (tmp_path / "old-0-py3-none-any.whl").write_bytes(b"left over")
    per = {"windows-3.11": ["a-1-py3-none-any.whl", "b-1-cp311-cp311-win_amd64.whl"],
           "macos-3.11": ["a-1-py3-none-any.whl", "a-1-py3-none-any.whl"]}
    m = W.write_manifest(tmp_path, per, pythons=["3.11"], seconds=12.34, torch_source=None)
    assert m == json.loads((tmp_path / W.MANIFEST).read_text())
    assert [f["name"] for f in m["files"]] == ["a-1-py3-none-any.whl", "b-1-cp311-cp311-win_amd64.whl"]
    assert m["files"][1]["size"] == len(b"windows only")
    assert m["files"][1]["sha256"] == hashlib.sha256(b"windows only").hexdigest()
    assert m["total_bytes"] == len(b"shared") + len(b"windows only")
    assert m["platforms"]["macos-3.11"] == {"target": "macos", "python": "3.11", "tags": ["macosx_14_0_arm64"],
                                            "files": ["a-1-py3-none-any.whl"], "bytes": len(b"shared")}
    assert m["platforms"]["windows-3.11"]["bytes"] == m["total_bytes"]
    assert m["created"].endswith("Z") and m["build_seconds"] == 12.3
    sums = (tmp_path / W.SUMS).read_text().splitlines()
    assert sums == [f"{f['sha256']}  {f['name']}" for f in m["files"]]


def test_no_cpu_torch_stops_with_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(W, "reachable", lambda url, timeout=10.0: "Name or service not known")
    calls = []

    def fake_pip(args, log):
        calls.append(args)
        return 1, []

    monkeypatch.setattr(W, "run_pip", fake_pip)
    with pytest.raises(SystemExit) as stop:
        W.build(tmp_path / "wh", ["linux"], ["3.11"], torch_index=W.TORCH_CPU_INDEX, find_links=["wheels"],
                pip_args=[])
    message = str(stop.value.code)
    assert "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl" in message
    assert "TORCH_INDEX=" in message and "FIND_LINKS=" in message and 'PLATFORMS="macos windows"' in message
    assert "cannot be reached" in capsys.readouterr().out
    [args] = calls  # only the torch download ran, with no unreachable index and with the find-links
    assert "torch==2.13.0+cpu" in args and "--extra-index-url" not in args and "wheels" in args
    assert not (tmp_path / "wh" / W.MANIFEST).exists()


def test_a_cuda_wheel_on_linux_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(W, "reachable", lambda url, timeout=10.0: None)
    answers = iter([(0, ["torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"]),
                    (0, ["nvidia_cublas-13.0-py3-none-manylinux_2_28_x86_64.whl"])])
    monkeypatch.setattr(W, "run_pip", lambda args, log: next(answers))
    with pytest.raises(SystemExit, match="CUDA"):
        W.build(tmp_path, ["linux"], ["3.11"], torch_index=W.TORCH_CPU_INDEX, find_links=[], pip_args=[])


# --------------------------------------------------------------------------- the Makefile switch


def make_dry_run(*args: str) -> str:
    if not shutil.which("make"):
        skip_or_fail("make is not installed")
    env = {k: v for k, v in os.environ.items() if k != "SWEAT_WHEELHOUSE"}
    return subprocess.run(["make", "-n", "-B", "-C", str(REPO), *args, "setup"], env=env, check=True,
                          capture_output=True, text=True).stdout


def test_make_installs_from_a_wheelhouse_only_when_there_is_one(tmp_path):
    online = make_dry_run(f"WHEELHOUSE={tmp_path / 'none'}", "PIP_ARGS=--index-url https://mirror")
    assert "--no-index" not in online and "--index-url https://mirror -e '.[test]'" in online

    offline = make_dry_run(f"SWEAT_WHEELHOUSE={tmp_path}", "PIP_ARGS=--timeout 5")
    assert f"--no-index --find-links '{tmp_path}' --timeout 5 -e '.[test]'" in offline

    # the default folder counts once `make wheelhouse` finished it (its manifest is written last)
    (tmp_path / W.MANIFEST).write_text("{}")
    assert f"--no-index --find-links '{tmp_path}'" in make_dry_run(f"WHEELHOUSE={tmp_path}")


# --------------------------------------------------------------------------- end to end


def network_cutter() -> list[str]:
    """``unshare -n`` (root) or ``unshare -rn`` (a user namespace): a command prefix with no network."""
    if not shutil.which("unshare"):
        skip_or_fail("unshare (util-linux) is not installed: cannot cut the network for the offline install")
    for prefix in (["unshare", "-n"], ["unshare", "-rn"]):
        if subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
            return prefix
    skip_or_fail("neither `unshare -n` nor `unshare -rn` works here (user namespaces are not allowed)")


def offline_env() -> dict[str, str]:
    """This environment with no pip settings: the wheelhouse must be all that pip sees."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "SWEAT_WHEELHOUSE", "VIRTUAL_ENV"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_build_a_wheelhouse_and_install_the_course_from_it_with_no_network(tmp_path):
    if not (ON_CI or os.environ.get("SWEAT_TEST_WHEELHOUSE") == "1"):
        pytest.skip("downloads ~0.5 GB and installs it (minutes): runs with SWEAT_TEST_WHEELHOUSE=1 or CI=true")
    if W.current_target() is None:
        skip_or_fail(f"this machine ({sys.platform}) is not a wheelhouse target: {' '.join(W.PLATFORMS)}")
    if sys.platform != "linux":
        skip_or_fail("cutting the network needs Linux namespaces (unshare)")
    if not shutil.which("make"):
        skip_or_fail("make is not installed")
    cut = network_cutter()
    python = "%d.%d" % sys.version_info[:2]
    wheelhouse, venv = tmp_path / "wheelhouse", tmp_path / "venv"

    t0 = time.monotonic()
    built = subprocess.run([sys.executable, "-m", "sweatlab.tools.wheelhouse", "--dest", str(wheelhouse),
                            "--platforms", "this", "--python", python],
                           env={**os.environ, "PYTHONPATH": str(REPO / "lib")}, capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    manifest = json.loads((wheelhouse / W.MANIFEST).read_text())
    names = [f["name"] for f in manifest["files"]]
    assert any(n.startswith("torch-2.13.0") for n in names) and any(n.startswith("setuptools-") for n in names)
    t1 = time.monotonic()

    env = offline_env()
    probe = subprocess.run([*cut, sys.executable, "-c", "import socket; socket.create_connection(('pypi.org', 443), 5)"],
                           env=env, capture_output=True, text=True)
    assert probe.returncode != 0, "the network is not cut: the test would prove nothing"

    install = subprocess.run([*cut, "make", "-C", str(REPO), f"PYTHON={sys.executable}", f"VENV={venv}",
                              f"SWEAT_WHEELHOUSE={wheelhouse}", "setup"], env=env, capture_output=True, text=True)
    assert install.returncode == 0, install.stdout[-4000:] + install.stderr[-4000:]
    assert "Installing with no network from the wheelhouse" in install.stdout
    t2 = time.monotonic()

    py = str(venv / "bin" / "python")
    imports = subprocess.run([*cut, py, "-c", "import sweatlab, torch, numpy, onnxruntime; print(torch.__version__)"],
                             env=env, capture_output=True, text=True, cwd=tmp_path)
    assert imports.returncode == 0, imports.stderr[-4000:]
    assert imports.stdout.strip().startswith("2.13.0")
    tests = subprocess.run([*cut, py, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "tests/test_records.py", "tests/test_flops.py"],
                           env=env, capture_output=True, text=True, cwd=REPO)
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-4000:]
    print(f"\nwheelhouse {manifest['total_bytes'] / 2**20:.0f} MiB built in {t1 - t0:.0f} s; "
          f"offline install {t2 - t1:.0f} s; imports and tests {time.monotonic() - t2:.0f} s")
