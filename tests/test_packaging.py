"""pyproject.toml and environment.yml list the same packages; the CI and README promises hold."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): r.replace(" ", "") for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_name(r): r.replace(" ", "") for r in pip if not r.startswith("-e")}
    assert listed == wanted


def test_trl_and_bitsandbytes_pins():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "trl==1.16.*" in deps and "bitsandbytes>=0.50" in deps
    torch = next(d for d in deps if _name(d) == "torch")
    assert "==" not in torch, "never pin torch: Colab's own build must be kept"


def test_ci_calls_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make tutorial" in readme


def test_lock_pins_every_dependency_within_pyproject_bounds():
    # `make` installs with `-c requirements.lock`: each dependency must be pinned there exactly, inside the
    # loose bounds pyproject.toml gives Colab and other environments. torch is left out on purpose.
    from packaging.requirements import Requirement
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [line for line in (ROOT / "requirements.lock").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    pins = {}
    for line in lines:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+!\-]+", line), f"not an exact pin: {line!r}"
        name, version = line.split("==")
        pins[_name(name)] = version
    assert "torch" not in pins, "torch must stay out of the lock: an installed torch (Colab, CUDA) is kept"
    assert "pip" in pins  # the Makefile installs this pip first
    for req in map(Requirement, project["dependencies"] + project["optional-dependencies"]["dev"]):
        if _name(req.name) == "torch":
            continue
        assert _name(req.name) in pins, f"{req.name} is not in requirements.lock: run `make lock`"
        assert req.specifier.contains(pins[_name(req.name)], prereleases=True), (req, pins[_name(req.name)])


def _package_imports() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, anywhere in it (function bodies included)."""
    import ast

    package = Path(__file__).resolve().parent.parent / "stepdpo_lite"
    modules = {p.stem: p for p in package.glob("*.py") if p.stem != "__init__"}
    edges = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                candidates = [node.module] if node.module else [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stepdpo_lite"):
                parts = node.module.split(".")
                candidates = parts[1:2] if len(parts) > 1 else [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [a.name.split(".")[1] for a in node.names if a.name.startswith("stepdpo_lite.")]
            else:
                continue
            found |= {c.split(".")[0] for c in candidates if c and c.split(".")[0] in modules}
        edges[name] = found - {name}
    return edges


def test_no_import_cycles_and_no_module_level_getattr_facades():
    """A module that needs a lazy import or a ``__getattr__`` re-export to dodge a cycle sits on the wrong side of
    a boundary: none may remain (imports inside functions count)."""
    edges = _package_imports()
    assert edges["steps"] == set() and "toyworld" in edges["labelling"]  # the scan sees imports at all

    def reaches(start, goal, seen):
        return any(nxt == goal or (nxt not in seen and not seen.add(nxt) and reaches(nxt, goal, seen))
                   for nxt in edges[start])

    cycles = sorted(name for name in edges if reaches(name, name, set()))
    assert cycles == [], f"modules on an import cycle: {cycles}"
    package = Path(__file__).resolve().parent.parent / "stepdpo_lite"
    facades = [p.name for p in package.glob("*.py") if p.stem != "__init__" and "\ndef __getattr__(" in p.read_text()]
    assert facades == []


def test_the_core_never_imports_the_tutorial_kit():
    """The library a user reuses (steps, losses, trainer, reward models, loading, evaluation) imports nothing
    of the tutorial kit (toy world, GSM8K tasks, profiles, notebooks' helpers), functions included."""
    core = {"steps", "losses", "stepwise_data", "trainer", "rewards", "reward_ensembles", "reward_training",
            "models", "evaluation"}
    edges = _package_imports()
    assert core <= set(edges)
    assert {name: sorted(edges[name] - core) for name in core if edges[name] - core} == {}
