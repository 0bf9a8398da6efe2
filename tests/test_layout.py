"""The tree a newcomer reads: the map in ablation/__init__.py against the folders and the import contract.

The map is the one description of the architecture; these tests fail when a module is added,
moved or layered without the map saying so, and `lint-imports` (make test) fails when an import
breaks the layers.
"""

import re
import tomllib
from pathlib import Path

import ablation

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ablation"
MAX_TOP_MODULES = 6  # besides __init__ and __main__: the rest lives in subpackages by layer
MAX_MODULE_LINES = 400  # a module a newcomer reads in one sitting; a longer one is two jobs


def _map() -> tuple[list[set], dict[str, list[set]]]:
    """(the top layers, each package's layers), read from the indented map in the package docstring."""
    top, inner, package = [], {}, None
    for line in ablation.__doc__.splitlines():
        match = re.match(r"^( {4}| {8})(\S.*?)(?: {2,}|$)", line)
        if not match or line.strip().startswith(("Below", "per study")):
            continue
        indent, names = len(match.group(1)), match.group(2)
        layer = {name.strip().rstrip("/") for name in re.split(r"[|,]", names)}
        if indent == 4:
            top.append(layer)
            package = names.rstrip("/") if names.endswith("/") else None
            if package:
                inner[package] = []
        else:
            assert package, f"a module line outside a package in the map: {line!r}"
            inner[package].append(layer)
    return top, inner


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _layers(contract: dict, prefix: str = "") -> list[set]:
    return [{name.strip().removeprefix(prefix) for name in re.split(r"[|:]", layer)} for layer in contract["layers"]]


def test_the_map_names_every_package_and_module_in_the_tree():
    top, inner = _map()
    on_disk = {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    on_disk |= {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert set().union(*top) == on_disk
    for package, layers in inner.items():
        modules = {path.stem for path in (PACKAGE / package).glob("*.py") if path.stem != "__init__"}
        assert set().union(*layers) == modules, package


def test_the_map_and_the_import_contract_have_the_same_layers():
    top, inner = _map()
    contracts = _contracts()
    packages = next(c for c in contracts if "containers" not in c)
    assert _layers(packages, "ablation.") == [{"benchmarks"}, {"studies"}, *top, {"builders"}]
    by_container = {c["containers"][0].removeprefix("ablation."): c for c in contracts if "containers" in c}
    assert set(by_container) == set(inner)
    for package, layers in inner.items():
        assert _layers(by_container[package]) == layers, package


def test_ablation_is_in_subpackages_with_few_modules_at_its_top():
    top_modules = [path.stem for path in PACKAGE.glob("*.py") if path.stem not in ("__init__", "__main__")]
    assert len(top_modules) <= MAX_TOP_MODULES, top_modules
    assert len(list(PACKAGE.glob("*/__init__.py"))) >= 4


def test_no_module_of_the_framework_is_over_400_lines():
    lengths = {str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in lengths.items() if n > MAX_MODULE_LINES} == {}


def test_the_import_paths_users_have_keep_working():
    from ablation.run import RunConfig, train
    from ablation.statistics import compare, compare_all
    from ablation.study import Configuration, Study

    assert callable(train) and callable(compare) and callable(compare_all)
    assert RunConfig.__module__ == "ablation.run.config"
    assert Study.__module__ == Configuration.__module__ == "ablation.study.declaration"


FILE_NAME = re.compile(r"(?<!docs/)(?<![\w.])(?:[\w*-]+\.(?:json|csv|md|html|png|svg|txt|keras|tex|h5|log|dot)|\.lock)\b")
LAYOUT = PACKAGE / "core" / "layout.py"


def _spelled_file_names(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every file name in a string of the module's code; docstrings are prose, not code."""
    import ast

    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, name) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            for name in FILE_NAME.findall(node.value)]


def test_every_results_file_name_is_spelled_once_in_the_layout_module():
    spelled = {f"{path.relative_to(ROOT)}:{line}": name for path in sorted(PACKAGE.rglob("*.py")) if path != LAYOUT
               for line, name in _spelled_file_names(path)}
    assert spelled == {}
    names = [name for _, name in _spelled_file_names(LAYOUT)]
    assert len(names) == len(set(names)), sorted(name for name in names if names.count(name) > 1)


def test_a_model_saved_before_the_move_to_subpackages_loads(tmp_path):
    # A .keras file names each of our classes by its registered name (ablation>CoupledSGD,
    # ablation>StepDecay, builders>FusedBatchNormalization) and by the module it was in; the
    # registered name finds the class, so the files written when the recipes were ablation.recipes load.
    import zipfile

    import keras

    from ablation.run.recipes import CoupledSGD, StepDecay, get_recipe
    from builders import build
    from builders.batch_norm import FusedBatchNormalization

    # Compiled as those versions compiled the net itself (runs now save it without an optimizer).
    model = build("wrn-10-1")
    model.compile(optimizer=get_recipe("wrn").make_optimizer(steps_per_epoch=10),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.optimizer.build(model.trainable_variables)
    model.save(tmp_path / "new.keras")
    with zipfile.ZipFile(tmp_path / "new.keras") as new, zipfile.ZipFile(tmp_path / "old.keras", "w") as old:
        for item in new.infolist():
            data = new.read(item)
            if item.filename == "config.json":
                assert b'"module": "ablation.run.recipes"' in data
                data = data.replace(b'"module": "ablation.run.recipes"', b'"module": "ablation.recipes"')
            old.writestr(item, data)
    loaded = keras.saving.load_model(tmp_path / "old.keras")
    assert isinstance(loaded.optimizer, CoupledSGD)
    assert isinstance(keras.optimizers.schedules.deserialize(loaded.optimizer.get_config()["learning_rate"]), StepDecay)
    assert any(isinstance(layer, FusedBatchNormalization) for layer in loaded.layers)
