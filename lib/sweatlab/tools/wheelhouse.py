"""A wheelhouse for a classroom with poor Wi-Fi: every pinned wheel, for every target platform.

``make wheelhouse`` (with network) runs ``python -m sweatlab.tools.wheelhouse``: for each target
platform and Python version, ``pip download --only-binary=:all:`` collects the course's pinned
dependencies and test extras (with everything they need) and the build backend that
``pip install -e .`` needs, into one folder, and writes ``manifest.json`` (files, sizes,
SHA-256, platforms, time) and ``SHA256SUMS`` there. Copy the folder to the classroom; there
``SWEAT_WHEELHOUSE=<folder> make lab`` installs with ``pip install --no-index --find-links``.

Standard library only: it runs before anything is installed (``PYTHONPATH=lib``).

Linux x86-64 must get the CPU build of torch (``torch==X+cpu``): PyPI's Linux torch is the
multi-GB CUDA build. The CPU wheel comes from the PyTorch CPU index (``--torch-index``) or from
a folder holding it (``--find-links``, or pip's own ``PIP_FIND_LINKS``); without it the
build stops and says what to do.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform as _platform
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
DEFAULT_PYTHONS = ("3.11",)
# Wheel platform tags per target, best first (pip prefers the earlier ones).
# linux: glibc 2.28 or newer (torch's own floor: manylinux_2_28), x86-64.
# macos: Apple silicon, macOS 14 or newer (torch 2.13's floor: macosx_14_0_arm64);
#        pip adds the older 13, 12, 11 and universal2 tags itself.
# windows: 64-bit x86.
PLATFORMS: dict[str, tuple[str, ...]] = {
    "linux": tuple(f"manylinux_2_{minor}_x86_64" for minor in range(28, 16, -1))
    + ("manylinux2014_x86_64", "manylinux_2_12_x86_64", "manylinux2010_x86_64",
       "manylinux_2_5_x86_64", "manylinux1_x86_64"),
    "macos": ("macosx_14_0_arm64",),
    "windows": ("win_amd64",),
}
# The environment markers of each target (PEP 508). `pip download --platform` picks wheels for the
# target but evaluates markers for the machine it runs on: from Linux, torch's
# `platform_system == "Linux"` CUDA dependencies would be fetched for macOS and Windows too.
# So pip runs with these values in place of the host's (see PIP_WITH_MARKERS).
MARKERS: dict[str, dict[str, str]] = {
    "linux": {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix"},
    "macos": {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64", "os_name": "posix"},
    "windows": {"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64", "os_name": "nt"},
}
PIP_WITH_MARKERS = (
    "import json, sys\n"
    "from pip._vendor.packaging import markers\n"
    "host = markers.default_environment\n"
    "target = json.loads(sys.argv.pop(1))\n"
    "markers.default_environment = lambda: {**host(), **target}\n"
    "from pip._internal.cli.main import main\n"
    "sys.argv[0] = 'pip'\n"
    "sys.exit(main())\n"
)
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
_SAVED = re.compile(r"^\s*(?:Saved|File was already downloaded)\s+(.+?\.whl)\s*$")


class WheelhouseError(SystemExit):
    """A failure with a message that says what to do (exit status 1)."""

    def __init__(self, message: str):
        super().__init__(f"make wheelhouse: {message}")


# ---------------------------------------------------------------- what to download


def _toml_arrays(text: str) -> dict[str, dict[str, list[str]]]:
    """The string arrays of a pyproject.toml, by table and key (a fallback for Python 3.10: no tomllib)."""
    tables: dict[str, dict[str, list[str]]] = {}
    for header, body in re.findall(r"(?ms)^\[([^\]\n]+)\]\s*$(.*?)(?=^\[|\Z)", text):
        arrays = tables.setdefault(header.strip(), {})
        for key, items in re.findall(r"(?ms)^\s*([A-Za-z0-9_\-]+)\s*=\s*\[(.*?)\]", body):
            arrays[key] = re.findall(r"\"([^\"]+)\"", items)
    return tables


def requirements(pyproject: Path = REPO / "pyproject.toml") -> tuple[list[str], list[str]]:
    """(the project's pins: dependencies and every extra; the build-system requirements)."""
    text = pyproject.read_text(encoding="utf-8")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tables = _toml_arrays(text)
        extras = [r for reqs in tables.get("project.optional-dependencies", {}).values() for r in reqs]
        build = tables.get("build-system", {}).get("requires", ["setuptools"])
        return tables["project"]["dependencies"] + extras, build
    data = tomllib.loads(text)
    project = data["project"]
    pins = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        pins += extra
    return pins, list(data.get("build-system", {}).get("requires", ["setuptools"]))


def pinned_version(pins: list[str], name: str) -> str:
    for req in pins:
        match = re.fullmatch(rf"{re.escape(name)}\s*==\s*([^\s;+]+)", req.strip(), re.IGNORECASE)
        if match:
            return match.group(1)
    raise WheelhouseError(f"pyproject.toml has no exact pin {name}==X.Y.Z")


def platform_pins(pins: list[str], target: str) -> list[str]:
    """The pins for one target: on Linux torch becomes its CPU build, ``torch==X+cpu``."""
    if target != "linux":
        return list(pins)
    torch = pinned_version(pins, "torch")
    return [f"torch=={torch}+cpu" if re.match(r"torch\s*==", p, re.IGNORECASE) else p for p in pins]


def build_requirements(build_requires: list[str]) -> list[str]:
    """The build backend of ``pip install -e .`` and ``wheel``, which older setuptools ask for."""
    names = {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in build_requires}
    return list(build_requires) + ([] if "wheel" in names else ["wheel"])


def pip_download_args(target: str, python: str, dest: Path, reqs: list[str], *,
                      find_links: list[str] = (), extra_index: str | None = None,
                      no_deps: bool = False, pip_args: list[str] = (),
                      executable: str = sys.executable) -> list[str]:
    """The ``pip download`` command line for one target platform and Python version."""
    if target not in PLATFORMS:
        raise WheelhouseError(f"unknown platform {target!r}: choose from {' '.join(PLATFORMS)}")
    if not re.fullmatch(r"3\.\d+", python):
        raise WheelhouseError(f"Python version {python!r} is not of the form 3.11")
    target_markers = {**MARKERS[target], "python_version": python, "python_full_version": f"{python}.0",
                      "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    args = [executable, "-c", PIP_WITH_MARKERS, json.dumps(target_markers), "download", "--disable-pip-version-check",
            "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
            "--dest", str(dest)]
    for tag in PLATFORMS[target]:
        args += ["--platform", tag]
    for link in find_links:
        args += ["--find-links", str(link)]
    if extra_index:
        args += ["--extra-index-url", extra_index]
    if no_deps:
        args.append("--no-deps")
    return args + list(pip_args) + list(reqs)


def current_target() -> str | None:
    """This machine's target name (``linux``, ``macos``, ``windows``), or None if it is none of them."""
    machine = _platform.machine().lower()
    if sys.platform.startswith("linux") and machine in ("x86_64", "amd64"):
        return "linux"
    if sys.platform == "darwin" and machine == "arm64":
        return "macos"
    if sys.platform == "win32" and machine in ("amd64", "x86_64"):
        return "windows"
    return None


def reachable(url: str, timeout: float = 10.0) -> str | None:
    """None if ``url`` answers; else why not (one line)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read(1)
        return None
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return str(getattr(error, "reason", error))


# ---------------------------------------------------------------- running pip


def run_pip(args: list[str], log) -> tuple[int, list[str]]:
    """Run one ``pip download``; echo and log its output; return (exit status, the wheels it gave)."""
    log.write("$ " + " ".join(args) + "\n")
    log.flush()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            encoding="utf-8", errors="replace")
    wheels = []
    for line in proc.stdout:
        log.write(line)
        match = _SAVED.match(line)
        if match:
            wheels.append(Path(match.group(1)).name)
            print("  " + wheels[-1], flush=True)
        elif line.startswith("ERROR"):
            print("  " + line.rstrip(), flush=True)
    return proc.wait(), wheels


def torch_missing_message(torch: str, python: str, index: str | None, why: str | None) -> str:
    tag = "cp" + python.replace(".", "")
    tried = (f"the PyTorch CPU index {index} ({why or 'it has no such wheel'})" if index
             else "no PyTorch index (--torch-index was empty)")
    return (
        f"the CPU build of torch=={torch} for Linux x86-64, Python {python} "
        f"(torch-{torch}+cpu-{tag}-{tag}-manylinux_2_28_x86_64.whl) was not found.\n"
        f"  Tried: {tried}, the find-links folders, and the package index.\n"
        f"  PyPI's Linux torch is the multi-GB CUDA build, so the wheelhouse does not take it.\n"
        f"  Do one of these, then run make wheelhouse again:\n"
        f"  - from a network that reaches the PyTorch CPU index: make wheelhouse TORCH_INDEX={TORCH_CPU_INDEX}\n"
        f"  - download that wheel file on any machine, put it in a folder, and:"
        f" make wheelhouse FIND_LINKS=that/folder\n"
        f"  - or leave Linux out: make wheelhouse PLATFORMS=\"macos windows\"")


# ---------------------------------------------------------------- the manifest


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(dest: Path, per_target: dict[str, list[str]], *, pythons: list[str],
                   seconds: float, torch_source: str | None) -> dict:
    """Write ``manifest.json`` and ``SHA256SUMS`` for the wheels the run gave; return the manifest."""
    names = sorted({name for wheels in per_target.values() for name in wheels})
    files = []
    for name in names:
        path = dest / name
        files.append({"name": name, "size": path.stat().st_size, "sha256": sha256(path)})
    sizes = {f["name"]: f["size"] for f in files}
    manifest = {
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "build_seconds": round(seconds, 1),
        "pythons": pythons,
        "platforms": {
            key: {"target": key.split("-")[0], "python": key.split("-")[1],
                  "tags": list(PLATFORMS[key.split("-")[0]]),
                  "files": sorted(set(wheels)),
                  "bytes": sum(sizes[w] for w in set(wheels))}
            for key, wheels in per_target.items()
        },
        "torch_cpu_from": torch_source,
        "total_bytes": sum(f["size"] for f in files),
        "files": files,
        "install": "SWEAT_WHEELHOUSE=<this folder> make lab   "
                   "(or: pip install --no-index --find-links <this folder> -e '.[test]')",
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    (dest / SUMS).write_text("".join(f"{f['sha256']}  {f['name']}\n" for f in files), encoding="utf-8")
    return manifest


def human(nbytes: int) -> str:
    return f"{nbytes / 2**20:,.0f} MiB"


# ---------------------------------------------------------------- the command


def build(dest: Path, targets: list[str], pythons: list[str], *, torch_index: str | None,
          find_links: list[str], pip_args: list[str]) -> dict:
    started = time.monotonic()
    dest.mkdir(parents=True, exist_ok=True)
    # a half-built wheelhouse must not pass for a whole one (the Makefile looks for the manifest)
    (dest / MANIFEST).unlink(missing_ok=True)
    pins, build_requires = requirements()
    torch = pinned_version(pins, "torch")
    reqs_build = build_requirements(build_requires)
    index_why = None
    if "linux" in targets and torch_index:
        index_why = reachable(torch_index.rstrip("/") + "/torch/")
        if index_why:
            print(f"The PyTorch CPU index {torch_index} cannot be reached ({index_why}); "
                  "looking for the CPU torch in the find-links folders only.")
    per_target: dict[str, list[str]] = {}
    torch_source = None
    with open(dest / "pip-download.log", "w", encoding="utf-8") as log:
        for target in targets:
            for python in pythons:
                key = f"{target}-{python}"
                print(f"== {key}: {' '.join(PLATFORMS[target][:1])}{' ...' if len(PLATFORMS[target]) > 1 else ''}",
                      flush=True)
                wheels: list[str] = []
                links = list(find_links)
                if target == "linux":
                    index = torch_index if torch_index and not index_why else None
                    rc, got = run_pip(pip_download_args(
                        target, python, dest, [f"torch=={torch}+cpu"], find_links=links,
                        extra_index=index, no_deps=True, pip_args=pip_args), log)
                    if rc != 0 or not got:
                        raise WheelhouseError(torch_missing_message(torch, python, torch_index, index_why))
                    torch_source = index or "find-links"
                    wheels += got
                    links.append(str(dest))  # the main download takes torch from here
                rc, got = run_pip(pip_download_args(
                    target, python, dest, platform_pins(pins, target) + reqs_build,
                    find_links=links, pip_args=pip_args), log)
                if rc != 0:
                    raise WheelhouseError(
                        f"pip download failed for {key} (see the lines above and {dest / 'pip-download.log'}).\n"
                        "  A package with no wheel for this platform and Python cannot go in a wheelhouse: "
                        "choose other PLATFORMS or PYTHONS, or check the network and run again.")
                wheels += got
                if target == "linux":
                    cuda = [w for w in wheels if w.startswith(("nvidia_", "nvidia-", "triton-", "cuda_", "cuda-"))
                            or (w.startswith("torch-") and "+cpu" not in w)]
                    if cuda:
                        raise WheelhouseError(f"the Linux download took CUDA wheels {cuda}: "
                                              "remove them from the wheelhouse and report this.")
                per_target[key] = wheels
                print(f"   {len(set(wheels))} wheels", flush=True)
    manifest = write_manifest(dest, per_target, pythons=pythons, seconds=time.monotonic() - started,
                              torch_source=torch_source)
    stale = sorted(p.name for p in dest.glob("*.whl") if p.name not in {f["name"] for f in manifest["files"]})
    for key, info in manifest["platforms"].items():
        print(f"{key}: {len(info['files'])} wheels, {human(info['bytes'])}")
    print(f"Wheelhouse {dest}: {len(manifest['files'])} wheels, {human(manifest['total_bytes'])}, "
          f"built in {manifest['build_seconds']:.0f} s. Manifest: {dest / MANIFEST}")
    if stale:
        print(f"Note: {len(stale)} older wheels in {dest} are not in the manifest (e.g. {stale[0]}); "
              "they do no harm, or delete the folder and build again.")
    print(f"Install with no network: SWEAT_WHEELHOUSE={dest} make lab")
    return manifest


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sweatlab.tools.wheelhouse",
        description="Collect every pinned wheel of the course, for each target platform, into one folder "
                    "for installing with no network (SWEAT_WHEELHOUSE=<folder> make lab).")
    parser.add_argument("--dest", default="wheelhouse", help="the folder (default: wheelhouse)")
    parser.add_argument("--platforms", default=" ".join(PLATFORMS),
                        help=f"targets, space or comma separated, from: {' '.join(PLATFORMS)}; "
                             "'this' is this machine's (default: all)")
    parser.add_argument("--python", default=" ".join(DEFAULT_PYTHONS),
                        help="Python versions, e.g. '3.11 3.12' (default: 3.11)")
    parser.add_argument("--torch-index", default=TORCH_CPU_INDEX,
                        help=f"where Linux gets the CPU torch (default: {TORCH_CPU_INDEX}; '' for none)")
    parser.add_argument("--find-links", action="append", default=[],
                        help="a folder (or URL) of wheels pip also looks in, e.g. one holding the CPU torch")
    parser.add_argument("pip_args", nargs="*", help="after --: more pip download options, e.g. --index-url MIRROR")
    args = parser.parse_args(argv)
    targets = []
    for name in re.split(r"[\s,]+", args.platforms.strip()):
        if name == "this":
            name = current_target()
            if name is None:
                parser.error(f"this machine ({sys.platform} {_platform.machine()}) is none of: {' '.join(PLATFORMS)}")
        if name not in PLATFORMS:
            parser.error(f"unknown platform {name!r}: choose from {' '.join(PLATFORMS)}")
        if name not in targets:
            targets.append(name)
    args.targets = targets
    args.pythons = [p for p in re.split(r"[\s,]+", args.python.strip()) if p]
    for python in args.pythons:
        if not re.fullmatch(r"3\.\d+", python):
            parser.error(f"Python version {python!r} is not of the form 3.11")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    build(Path(args.dest), args.targets, args.pythons, torch_index=args.torch_index or None,
          find_links=args.find_links, pip_args=args.pip_args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
