"""The package's shape: one-way layers, no import cycles, and no process-wide settings changed by importing it."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bayesmoe"
#: Layers from the bottom up; a module may import from its own layer and the layers before it.
LAYERS = ("errors", "config", "runs", "laws", "model", "inference", "decide", "report", "cli")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The bayesmoe modules ``path`` imports, anywhere in the file (function-level imports included)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "bayesmoe"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "bayesmoe":
                continue
            # `from pkg import sub` imports the module pkg.sub when there is one
            subs = {f"{target}.{a.name}" for a in node.names}
            found = {s for s in subs if _exists(s)}
            out |= found or {target}
            if found and len(found) < len(subs):
                out.add(target)
    return out


def _exists(module: str) -> bool:
    path = PACKAGE.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 else len(LAYERS)  # the package itself re-exports all


def test_every_module_belongs_to_a_layer():
    for module in _graph():
        if module != "bayesmoe":
            assert module.split(".")[1] in LAYERS, f"{module} is in no layer"


def test_each_layer_imports_only_from_layers_below():
    bad = [(m, t) for m, targets in _graph().items() for t in targets if _layer(t) > _layer(m)]
    assert not bad, "imports against the flow: " + ", ".join(f"{m} -> {t}" for m, t in bad)


def test_only_the_cli_imports_the_cli():
    bad = [(m, t) for m, targets in _graph().items() for t in targets
           if t.startswith("bayesmoe.cli") and not m.startswith("bayesmoe.cli")]
    assert not bad, ", ".join(f"{m} -> {t}" for m, t in bad)


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if target == module or target not in graph:
                continue
            assert state.get(target) != 1, "import cycle: " + " -> ".join([*path[path.index(target):], target])
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_the_graph_sees_known_edges():
    graph = _graph()
    assert "bayesmoe.runs.table" in graph["bayesmoe.runs.datasets"]
    assert "bayesmoe.cli.runner" in graph["bayesmoe.cli.demo"]


_PROBE = """
import json, warnings
import jax, matplotlib, numpy, numpyro, pandas, scipy.stats, xarray
with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz
import sys

def settings():
    return {"x64": jax.config.jax_enable_x64, "cache": jax.config.jax_compilation_cache_dir,
            "filters": repr(warnings.filters), "showwarning": repr(warnings.showwarning),
            "backend": matplotlib.rcParams._get_backend_or_none(), "pyplot": "matplotlib.pyplot" in sys.modules}

before = settings()
import importlib, pkgutil, bayesmoe
for info in pkgutil.walk_packages(bayesmoe.__path__, "bayesmoe."):
    importlib.import_module(info.name)
print(json.dumps([before, settings()]))
"""


def test_importing_bayesmoe_changes_no_process_settings(tmp_path):
    """Importing every bayesmoe module leaves x64, the compile cache, warnings and matplotlib's backend alone.

    The third-party packages are imported first: their own import-time warning filters are not bayesmoe's.
    """
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=True)
    before, after = json.loads(done.stdout.strip().splitlines()[-1])
    assert after == before
    assert before["x64"] is False


def test_cli_leaves_warning_settings_as_they_were(capsys):
    import warnings

    from bayesmoe.cli.main import main

    filters, show = list(warnings.filters), warnings.showwarning
    assert main(["laws", "--json"]) == 0
    assert warnings.filters == filters and warnings.showwarning is show


_FLOAT64_PROBE = """
import json, jax, numpy as np, bayesmoe
law = bayesmoe.get_law("chinchilla")
values = law.coefficient_set("chinchilla:besiroglu2024").values
runs = bayesmoe.simulate_runs(law, values, 5, noise=0.0)
n = runs["n_active"].to_numpy()
exact = values["E"] + values["A"] / n ** values["alpha"] + values["B"] / runs["tokens"].to_numpy() ** values["beta"]
print(json.dumps({"x64_after": jax.config.jax_enable_x64, "rel_err": float(np.max(np.abs(runs["loss"] / exact - 1)))}))
"""


def test_public_functions_compute_in_float64_without_configure(tmp_path):
    """Without bayesmoe.configure(), public functions still compute in float64 and leave x64 off afterwards."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", _FLOAT64_PROBE], capture_output=True, text=True, env=env, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["x64_after"] is False
    assert result["rel_err"] < 1e-12  # float32 would be ~1e-7


def test_public_api_names():
    import bayesmoe

    for name in bayesmoe.__all__:
        assert getattr(bayesmoe, name) is not None
    for name in ("fit", "load_fit", "load_runs", "optimum", "recommend", "compare", "report", "design", "simulate_runs",
                 "configure"):
        assert callable(getattr(bayesmoe, name)), name
    assert callable(bayesmoe.datasets.load) and callable(bayesmoe.holdout.check)
