"""Exact pins: pyproject.toml and environment.yml name the same packages at the same versions."""

from __future__ import annotations

import re
import tomllib

from conftest import REPO


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    pins = {}
    for req in reqs:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([0-9][A-Za-z0-9.]*)", req)
        assert match, f"pyproject.toml: {req!r} is not an exact pin (name==version)"
        pins[match.group(1).lower()] = match.group(2)
    return pins


def environment_pins() -> tuple[dict[str, str], list[str]]:
    pins, conda = {}, []
    in_pip = False
    for line in (REPO / "environment.yml").read_text().splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        if re.match(r"^\s+- pip:\s*$", line):
            in_pip = True
            continue
        item = re.match(r"^(\s+)- (.+?)\s*$", line)
        if not item:
            in_pip = False
            continue
        if in_pip and len(item.group(1)) >= 6:
            name, _, version = item.group(2).partition("==")
            assert version, f"environment.yml: {item.group(2)!r} is not an exact pin"
            pins[name.lower()] = version
        else:
            conda.append(item.group(2))
    return pins, conda


def test_every_dependency_is_an_exact_pin_and_torch_is_2_13_0():
    pins = pyproject_pins()
    assert pins["torch"] == "2.13.0"
    for required in ("jupyterlab", "numpy", "torch", "onnxruntime", "ipywidgets", "nbval", "matplotlib"):
        assert required in pins, f"{required} is a required package of the course"


def test_environment_yml_matches_pyproject():
    pins = pyproject_pins()
    env, conda = environment_pins()
    assert "python=3.11" in conda and "pip" in conda
    missing = sorted(set(pins) - set(env))
    extra = sorted(set(env) - set(pins))
    differ = {n: (pins[n], env[n]) for n in set(pins) & set(env) if pins[n] != env[n]}
    assert not missing and not extra and not differ, (
        f"environment.yml and pyproject.toml disagree: missing in environment.yml {missing}, "
        f"only in environment.yml {extra}, different versions (pyproject, environment) {differ}")


def test_the_parsers_see_a_disagreement(tmp_path, monkeypatch):
    # the comparison above must be able to fail: feed it a yml with one version changed
    import conftest

    fake = tmp_path / "repo"
    fake.mkdir()
    (fake / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    (fake / "environment.yml").write_text((REPO / "environment.yml").read_text().replace("numpy==", "numpy==9"))
    monkeypatch.setattr(conftest, "REPO", fake)
    monkeypatch.setitem(globals(), "REPO", fake)
    env, _ = environment_pins()
    assert env["numpy"] != pyproject_pins()["numpy"]
