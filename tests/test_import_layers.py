"""The import order declared once in pyproject.toml ([tool.importlinter], checked by import-linter) holds for the
code as it is, and breaks, naming the contract, when a module imports a layer above its own."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("spaces", "generators", "trainables", "search")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter over the packages under `root` (found first on the path), with the project's contracts."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(root / "pyproject.toml")], cwd=root, env={"PYTHONPATH": str(root)},
        capture_output=True, text=True, timeout=120,
    )


def test_the_code_keeps_every_declared_contract() -> None:
    linted = lint(REPO)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "0 broken" in linted.stdout


@pytest.fixture(scope="module")
def copy_of_the_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layers")
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.mark.parametrize(
    ("module", "planted", "broken"),
    [
        # A lower package reaching up: generators must never know about trainables.
        ("generators/base.py", "import trainables.trial", "search -> trainables -> generators -> spaces"),
        # Inside search: the settings (the bottom) importing the report.
        ("search/settings/sweep_config.py", "import search.report.files", "search, from its commands"),
        # The pure answer importing the driver's stages.
        ("search/answer/effect.py", "import search.stages", "search, from its commands"),
        # The pool (no Ray) reaching up to the actors in front of it.
        ("generators/pool/keys.py", "import generators.actors.pool_actor", "generators, from the actors"),
        # One generator family importing another: they are siblings.
        ("generators/ddpm/generator.py", "import generators.stable_diffusion.model", "generators, from the actors"),
        # Ray in a generator: the actors are the only Ray code in generators.
        ("generators/oversample.py", "import ray", "Ray is used in generators"),
        # Ray's private names outside search.tuning, even from a layer allowed to import tuning.
        ("search/report/page.py", "from search.tuning import _ray_compat", "Ray's private names"),
    ],
)
def test_an_import_against_the_order_breaks_its_contract(
    copy_of_the_code: Path, module: str, planted: str, broken: str
) -> None:
    path = copy_of_the_code / module
    original = path.read_text()
    path.write_text(f"{original}\n{planted}  # planted by the test\n")
    try:
        linted = lint(copy_of_the_code)
    finally:
        path.write_text(original)
    assert linted.returncode != 0
    broken_lines = [line for line in linted.stdout.splitlines() if line.rstrip().endswith("BROKEN")]
    assert any(line.startswith(broken) for line in broken_lines), linted.stdout
    # The report names the importing module.
    assert module.removesuffix(".py").replace("/", ".") in linted.stdout
