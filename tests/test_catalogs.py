"""The catalogs are derived from the constructors: no drift between ``ctx.<catalog>.<name>`` and
the class it builds, every registered catalog component reachable, the context's defaults applied."""

from __future__ import annotations

import inspect
import pydoc
import warnings

import pytest

import onnxpipe as op
from onnxpipe._catalog import CONTEXT_DEFAULTS, Catalog, entry
from onnxpipe.core import Component, registered_components
from onnxpipe.errors import FrozenComponentError, InvalidArgumentError
from onnxpipe.transforms.columns import ColumnConcatenatingTransformer, ColumnSelectingTransformer


def _catalogs(ctx: op.MLContext) -> dict[str, Catalog]:
    found: dict[str, Catalog] = {}

    def walk(obj: object, path: str) -> None:
        for name, value in vars(obj).items():
            if isinstance(value, Catalog) and not name.startswith("_"):
                found[f"{path}.{name}".lstrip(".")] = value
                walk(value, f"{path}.{name}")

    walk(ctx, "")
    return found


def _entries() -> list[tuple[str, type[Catalog], str, entry]]:  # type: ignore[type-arg]
    out = []
    for path, catalog in _catalogs(op.MLContext()).items():
        for name, value in vars(type(catalog)).items():
            if isinstance(value, entry):
                out.append((path, type(catalog), name, value))
    return out


def test_catalog_paths_match_where_they_hang() -> None:
    for path, catalog in _catalogs(op.MLContext()).items():
        assert type(catalog).path == path


@pytest.mark.parametrize(("path", "catalog", "name", "built"), _entries(), ids=lambda v: getattr(v, "name", None))
def test_each_catalog_method_is_its_constructor(path: str, catalog: type[Catalog], name: str, built: entry) -> None:  # type: ignore[type-arg]
    cls = built.factory
    assert isinstance(cls, type) and issubclass(cls, Component)
    method = getattr(_catalogs(op.MLContext())[path], name)
    constructor = inspect.signature(cls.__init__)
    assert inspect.signature(method).parameters == dict(list(constructor.parameters.items())[1:])
    assert method.__doc__ == cls.__doc__ and cls.__doc__, f"{cls.__qualname__} needs a docstring: it is the help"
    registered = [i for i in registered_components().values() if i.cls is cls]
    assert registered and registered[0].catalog == path and cls.catalog_name == name, (
        f"{cls.__qualname__} must be decorated @component({name!r}, catalog={path!r})"
    )


def test_every_registered_catalog_component_is_reachable_from_the_context() -> None:
    ctx = op.MLContext()
    for info in registered_components().values():
        if info.catalog is None:
            continue
        catalog: object = ctx
        for part in info.catalog.split("."):  # sub-catalogs such as ctx.transforms.text come from registrations
            assert part in dir(catalog)
            catalog = getattr(catalog, part)
        method = getattr(catalog, info.cls.catalog_name)
        assert inspect.signature(method) == inspect.signature(info.cls).replace(return_annotation=info.cls)
        assert info.cls.catalog_name in dir(catalog)


def test_the_context_fills_in_its_defaults() -> None:
    ctx = op.MLContext(seed=7)
    assert ctx.binary_classification.trainers.averaged_perceptron().get_state()["seed"] == 7
    assert ctx.binary_classification.trainers.averaged_perceptron(seed=3).get_state()["seed"] == 3
    assert ctx.clustering.trainers.kmeans("Features", None, 3).get_state()["seed"] == 7  # positional seed slot
    assert ctx.regression.trainers.light_gbm().get_state()["seed"] == 7
    assert op.MLContext().binary_classification.trainers.averaged_perceptron().get_state()["seed"] is None
    assert set(CONTEXT_DEFAULTS) <= set(vars(ctx))


def test_help_shows_the_constructor() -> None:
    text = pydoc.render_doc(op.MLContext().transforms.normalize_min_max, renderer=pydoc.plaintext)
    assert "maximum_example_count: 'int' = 1000000000" in text and "fix_zero" in text
    assert "(x - min)" in text  # the class's docstring


def test_an_unknown_catalog_name_lists_the_valid_ones() -> None:
    with pytest.raises(AttributeError, match=r"ctx.transforms has no 'normalise'; it has .*normalize_min_max"):
        op.MLContext().transforms.normalise  # noqa: B018


def test_components_are_immutable_and_with_parameters_copies() -> None:
    trainer = op.MLContext().binary_classification.trainers.averaged_perceptron(number_of_iterations=3)
    with pytest.raises(FrozenComponentError, match=r"averaged_perceptron\(Label, Features\): .*with_parameters"):
        trainer.number_of_iterations = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del trainer.loss
    changed = trainer.with_parameters(number_of_iterations=5)
    assert changed.get_state()["number_of_iterations"] == 5 and trainer.get_state()["number_of_iterations"] == 3
    with pytest.raises(InvalidArgumentError, match=r"unknown parameters \['iterations'\]; valid ones: .*"):
        trainer.with_parameters(iterations=5)


def test_the_old_column_forms_still_work_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match="separate arguments"):
        old = ColumnConcatenatingTransformer("F", ["a", "b"])  # type: ignore[arg-type]
    assert old == ColumnConcatenatingTransformer("F", "a", "b")
    with pytest.warns(DeprecationWarning):
        assert ColumnSelectingTransformer(["a"]).column_names == ("a",)  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert op.MLContext().transforms.select_columns("a", "b").column_names == ("a", "b")


def test_the_old_onnx_subpackage_is_a_deprecated_alias() -> None:
    import importlib
    import sys

    sys.modules.pop("onnxpipe.onnx", None)
    with pytest.warns(DeprecationWarning, match="onnxpipe.runtime"):
        old = importlib.import_module("onnxpipe.onnx")
    assert old.inspect_model is op.inspect_model
