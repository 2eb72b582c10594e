"""The project's own promises: conda and pip agree, the code is lint-clean, the README is true."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# pip names whose conda-forge packages are named or split differently
CONDA_NAMES = {"dask[distributed]": ["dask", "distributed"], "tomli": []}


def _split(req: str) -> tuple[str, str]:
    req = req.split(";")[0].strip()
    m = re.match(r"^([A-Za-z0-9_.\-]+(?:\[[^\]]+\])?)\s*(.*)$", req)
    return m.group(1).lower(), m.group(2).replace(" ", "")


def pip_requirements() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in meta["optional-dependencies"].values():
        reqs += extra
    out = {"python": meta["requires-python"].replace(" ", "")}
    for req in reqs:
        name, spec = _split(req)
        for conda_name in CONDA_NAMES.get(name, [name]):
            out[conda_name] = spec
    return out


def conda_requirements() -> tuple[dict[str, str], list]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out, pip_section = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_section = dep["pip"]
            continue
        name, spec = _split(dep)
        out[name] = spec
    return out, pip_section


def test_environment_yml_matches_pyproject():
    conda, pip_section = conda_requirements()
    conda.pop("pip")
    assert conda == pip_requirements()
    assert pip_section == ["-e ."]
    assert yaml.safe_load((ROOT / "environment.yml").read_text())["channels"] == ["conda-forge"]


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    result = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make report" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_numeric_core_does_not_import_matplotlib():
    code = (
        "import sys, gradflow as gf; gf.gradient_flow(gf.rnn(4, 1), gf.inputs.gaussian(5, 1, 1)); "
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_benchmark_scripts_run_and_check_their_numbers():
    # Each script asserts the engine's results against closed forms before timing them.
    for script in ("jacobians.py", "lyapunov.py", "paths.py", "training.py"):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / script), "--quick"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert proc.returncode == 0, proc.stderr
        assert "seconds" in proc.stdout or "engine" in proc.stdout
