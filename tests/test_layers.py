"""The architecture's executable statement: smoothcert's import graph only points downward.

Every module of ``src/smoothcert`` belongs to a component (``smoothcert/NAME.py`` or the package
``smoothcert/NAME/``); :data:`LAYERS` lists the components from the top (the program) to the
bottom (errors). A module may import its own component, and any component of a lower layer;
components of one *unit* (a tuple in :data:`LAYERS`) may import each other. Everything else is
a violation, apart from the entries of :data:`KNOWN_EXCEPTIONS`, each with its reason and its
owner (an entry no longer needed fails too, so that it is removed with the import).

The imports are read with :mod:`ast` (module level and inside functions alike), never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "smoothcert"
ROOT = "smoothcert"  # the package's __init__: __version__, and the public names, imported lazily

#: top to bottom; each layer is a list of units, each unit a tuple of components that may import
#: each other
LAYERS: list[list[tuple[str, ...]]] = [
    [("__main__",)],  # python -m smoothcert
    [("cli",)],  # the command line: arguments, messages, exit codes; nothing below imports it
    [("demo",)],  # the end-to-end demo: trains, certifies and tabulates through the library
    [("jobs",)],  # certify / predict a data set into a results file (the CLI's and the demo's)
    [  # the library's entry points
        ("smooth",),  # Smooth: predict / certify a classifier under noise
        ("distributed",),  # a run over a data set sharded over processes, part files merged
        ("selection",),  # choosing a noise configuration on validation results
        ("training",),  # training a base classifier under noise
        ("figures",),  # the paper's figures
    ],
    [("analysis",)],  # results files read into tables and plots
    [
        ("certificates",),  # the radius of a noise family under a norm
        ("results",),  # the results file: rows, configuration, resume, validation, locks
        # data reads .pt files through models.checkpoint.torch_load (the one reader of
        # torch.save files); models build their normalization from the data sets' constants
        ("data", "models"),
        ("sequential",),  # the statistics of adaptive (sequential) sampling
        ("device",),  # the torch device, chosen and checked
    ],
    [("noises",)],  # the noise families: sample, log_prob, their parameters
    [(ROOT,)],  # __version__; the public names (smoothcert.Smooth, ...) by importlib
    [("checks",)],  # plain argument values (counts, seeds, probabilities): no torch, no scipy
    [("errors",), ("palette",)],
]

#: (importer, imported) pairs that break the layering for now: the reason and who removes them
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


def _component(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ROOT if parts == ("__init__",) else parts[0]


def _package(path: Path) -> list[str]:
    """The dotted package that a relative import in ``path`` starts from."""
    parts = [ROOT, *path.relative_to(SRC).with_suffix("").parts]
    return parts[:-1]


def _is_module(dotted: list[str]) -> bool:
    rel = Path(*dotted[1:]) if len(dotted) > 1 else Path()
    return (SRC / rel).with_suffix(".py").is_file() or (SRC / rel / "__init__.py").is_file()


def _imported_components(path: Path) -> set[str]:
    """The smoothcert components that ``path`` imports (``from .. import NAME`` of a submodule
    counts as that submodule; of another name, as the root package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[list[str]] = []
        if isinstance(node, ast.Import):
            targets = [a.name.split(".") for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package(path)[: len(_package(path)) - node.level + 1]
                module = base + (node.module.split(".") if node.module else [])
            else:
                module = (node.module or "").split(".")
            targets = [
                module + [a.name] if _is_module(module + [a.name]) else module for a in node.names
            ]
        for dotted in targets:
            if dotted[0] == ROOT:
                found.add(dotted[1] if len(dotted) > 1 and _is_module(dotted[:2]) else ROOT)
    return found


def _rank() -> tuple[dict[str, int], dict[str, tuple[str, ...]]]:
    rank, unit_of = {}, {}
    for depth, layer in enumerate(LAYERS):
        for unit in layer:
            for name in unit:
                rank[name], unit_of[name] = len(LAYERS) - depth, unit
    return rank, unit_of


def _graph() -> dict[str, dict[str, list[str]]]:
    """``{importer: {imported: [files]}}`` between different components."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(SRC.rglob("*.py")):
        mine = _component(path)
        for other in _imported_components(path) - {mine}:
            graph.setdefault(mine, {}).setdefault(other, []).append(
                str(path.relative_to(SRC.parent))
            )
    return graph


def test_every_component_has_a_layer():
    """Every module of src/smoothcert belongs to a component placed in the layers table (a new
    module must say where it stands), and no component is listed twice."""
    names = [name for layer in LAYERS for unit in layer for name in unit]
    assert len(names) == len(set(names)), names
    components = {_component(p) for p in SRC.rglob("*.py")}
    assert components - set(names) == set(), "components missing from LAYERS"
    assert set(names) - components == set(), "LAYERS names components that do not exist"


def test_imports_point_downward():
    """smoothcert's import graph only points downward through LAYERS (cli -> library entry
    points -> analysis -> certificates / results / data and models -> noises -> errors), apart
    from the listed known exceptions, each still needed."""
    rank, unit_of = _rank()
    graph = _graph()
    violations, used = [], set()
    for importer, targets in sorted(graph.items()):
        for imported, files in sorted(targets.items()):
            if rank[imported] < rank[importer]:
                continue
            if rank[imported] == rank[importer] and imported in unit_of[importer]:
                continue
            if (importer, imported) in KNOWN_EXCEPTIONS:
                used.add((importer, imported))
                continue
            violations.append(f"{importer} -> {imported} ({', '.join(sorted(set(files)))})")
    assert violations == [], "imports that point up or sideways:\n" + "\n".join(violations)
    stale = set(KNOWN_EXCEPTIONS) - used
    assert stale == set(), f"known exceptions no longer needed (remove them): {stale}"


def test_nothing_outside_the_cli_imports_the_cli():
    """No module outside smoothcert/cli imports smoothcert.cli, apart from python -m smoothcert
    (__main__) and the listed known exceptions; in particular the resume engine of the results
    file is a library module (distributed and selection imported it from the CLI)."""
    importers = {importer for importer, targets in _graph().items() if "cli" in targets}
    allowed = {"__main__"} | {a for a, b in KNOWN_EXCEPTIONS if b == "cli"}
    assert importers - allowed == set()


@pytest.mark.parametrize(
    "lower, upper",
    [
        ("certificates", "smooth"),
        ("certificates", "cli"),
        ("noises", "certificates"),
        ("noises", "cli"),
        ("results", "distributed"),
        ("results", "cli"),
    ],
)
def test_named_rules_of_the_issue(lower, upper):
    """The rules issue 15 names hold: certificates import neither smooth nor cli, noises neither
    certificates nor cli, and the results file module neither distributed nor cli."""
    assert upper not in _graph().get(lower, {})


def test_the_root_package_names_no_cli_module():
    """The package's lazily imported public names (smoothcert.Smooth, ...) come from library
    modules, never from the CLI (importlib strings, which the import graph does not see)."""
    tree = ast.parse((SRC / "__init__.py").read_text(encoding="utf-8"))
    lazy = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets)
    )
    modules = {ast.literal_eval(v) for v in lazy.values}
    assert modules and not any(m.lstrip(".").split(".")[0] == "cli" for m in modules), modules


def test_cli_noise_names_are_the_noise_families():
    """The CLI's torch-free copy of the noise family names (choices of --noise) is exactly the
    families of smoothcert.noises, in their order (train_noise checks checkpoints against the
    families themselves)."""
    from smoothcert.cli.common import NOISE_NAMES
    from smoothcert.noises import FAMILIES

    assert NOISE_NAMES == tuple(FAMILIES)
