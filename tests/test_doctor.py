"""`sweatlab doctor`: one line per check, each failure with its fix, exit status 1 on failure."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import pytest

from sweatlab.tools import doctor


def test_pins_come_from_the_installed_package_metadata():
    pins = doctor._pins()
    assert pins["torch"] == "2.13.0" and "numpy" in pins
    assert "pytest" not in pins and doctor._pins("test")["pytest"]


def test_wrong_version_fails_with_the_pip_command(monkeypatch):
    real = metadata.version
    monkeypatch.setattr(doctor.metadata, "version", lambda n: "1.0.0" if n == "numpy" else real(n))
    [numpy] = [c for c in doctor.check_packages(doctor._pins(), "package", True) if c.name == "package numpy"]
    assert numpy.status == "fail" and "1.0.0 installed" in numpy.detail
    assert numpy.fix.startswith("pip install 'numpy==")


def test_missing_package_fails_and_missing_test_package_only_warns(monkeypatch):
    def version(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(doctor.metadata, "version", version)
    assert {c.status for c in doctor.check_packages({"numpy": "2.4.6"}, "package", True)} == {"fail"}
    assert {c.status for c in doctor.check_packages({"pytest": "9.2.0"}, "test package", False)} == {"warn"}


def test_torch_local_version_matches_its_pin(monkeypatch):
    monkeypatch.setattr(doctor.metadata, "version", lambda n: "2.13.0+cpu")
    assert doctor.check_packages({"torch": "2.13.0"}, "package", True)[0].status == "ok"


def test_unregistered_kernel_fails_with_the_install_command(monkeypatch):
    from jupyter_client import kernelspec

    monkeypatch.setattr(kernelspec.KernelSpecManager, "find_kernel_specs", lambda self: {"python3": "/x"})
    check = doctor.check_kernel()
    assert check.status == "fail" and "ipykernel install --sys-prefix --name systems-that-sweat" in check.fix


def test_a_crashing_probe_becomes_a_warning_not_a_crash():
    def broken():
        raise OSError("no /proc here")

    [check] = doctor._guard("cpu", broken)
    assert check.status == "warn" and "OSError: no /proc here" in check.detail


def test_table_shows_fix_under_failures_and_a_verdict():
    table = doctor.format_table([doctor.Check("python", "ok", "3.11"),
                                 doctor.Check("jupyter kernel", "fail", "not registered", "make setup")])
    assert "FAIL    jupyter kernel  not registered" in table
    assert "fix: make setup" in table and "1 failed" in table


@pytest.mark.slow
def test_doctor_on_this_install(tmp_path):
    result = subprocess.run([sys.executable, "-m", "sweatlab.tools.cli", "doctor", "--json"], capture_output=True,
                            text=True, timeout=120)
    checks = json.loads(result.stdout)
    names = {c["name"] for c in checks}
    for expected in ("python", "package torch", "jupyter kernel", "threads", "cpu", "cpu features",
                     "numba JIT", "energy sensors", "gpu"):
        assert expected in names, f"doctor lacks the {expected!r} check"
    failed = [c for c in checks if c["status"] == "fail"]
    assert result.returncode == (1 if failed else 0)
    assert not [c for c in failed if c["name"].startswith("package")], failed
    assert all(c["fix"] for c in failed), "every failure must say how to fix it"


def test_doctor_imports_without_nbformat():
    # doctor must run on a broken install: what it needs from the course tooling is stdlib-only
    code = ("import sys; import sweatlab.tools.doctor; from sweatlab.course.layout import KERNEL_NAME; "
            "heavy = [m for m in ('nbformat', 'jupytext', 'sweatlab.course.build', 'sweatlab.course.source') if m in sys.modules]; "
            "sys.exit(', '.join(heavy) or None)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def _no_inputs(monkeypatch, tmp_path):
    for var in ("SWEAT_TDP_W", "SWEAT_CHIP_CORES", "SWEAT_TDP_SOURCE", "SWEAT_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


def test_energy_inputs_default_warn_and_say_how_to_set_them(monkeypatch, tmp_path):
    _no_inputs(monkeypatch, tmp_path)
    check = doctor.check_energy_inputs()
    assert check.status == "warn" and "hypothetical" in check.detail and "280" in check.detail
    assert "SWEAT_TDP_W" in check.fix and "sweatlab.ini" in check.fix


def test_energy_inputs_from_a_config_file_in_the_course_folder(monkeypatch, tmp_path):
    _no_inputs(monkeypatch, tmp_path)
    (tmp_path / "sweatlab.ini").write_text("[energy]\ntdp_w = 15\nchip_cores = 4\nsource = i5-1135G7 datasheet\n")
    (tmp_path / "labs").mkdir()
    monkeypatch.chdir(tmp_path / "labs")  # a notebook runs in labs/: the file one folder up is found
    check = doctor.check_energy_inputs()
    assert check.status == "ok" and "15 W, 4 cores" in check.detail and "i5-1135G7" in check.detail


def test_energy_inputs_from_the_environment_win_and_bad_ones_fail(monkeypatch, tmp_path):
    _no_inputs(monkeypatch, tmp_path)
    (tmp_path / "sweatlab.ini").write_text("[energy]\ntdp_w = 15\nchip_cores = 4\n")
    monkeypatch.setenv("SWEAT_TDP_W", "65")
    monkeypatch.setenv("SWEAT_CHIP_CORES", "8")
    assert "65 W, 8 cores" in doctor.check_energy_inputs().detail
    monkeypatch.setenv("SWEAT_CHIP_CORES", "eight")
    bad = doctor.check_energy_inputs()
    assert bad.status == "fail" and "SWEAT_CHIP_CORES" in bad.detail
    monkeypatch.delenv("SWEAT_CHIP_CORES")
    assert doctor.check_energy_inputs().status == "fail"  # one of the two alone is an error, not the default
