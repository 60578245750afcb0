"""The pipeline contract: estimators, transformers and their chains.

* An :class:`Estimator` is an immutable specification. ``fit(data)`` returns a new, frozen
  :class:`Transformer`; the estimator is unchanged.
* Both answer ``output_schema(input_schema)`` before any data flows, so a whole pipeline is
  validated up front, and both ``append`` into chains.
* The types follow, as in ML.NET: ``Estimator[T]`` fits a ``T``, ``EstimatorChain[T]`` and
  ``TransformerChain[T]`` end with one, and ``append`` returns a chain typed by the step
  appended, so a fitted pipeline's :attr:`TransformerChain.last_transformer` (its trained model)
  has the model's own type for type checkers and IDEs.
* ``fit`` and ``transform`` take data as users hold it: a DataView, a pandas DataFrame, a pyarrow
  Table / RecordBatch / RecordBatchReader or a dict of numpy arrays (the base classes turn it into
  a DataView with :func:`onnxpipe.data.as_data_view` before any subclass's code runs).
* ``Transformer.transform`` is lazy: it returns a DataView whose batches are computed when read.
  A transformer implements only :meth:`Transformer.map_columns`, which turns the numpy values of
  the columns it reads into the values of the columns it writes, one batch at a time. The base
  class does the Arrow conversion, so the same code serves streamed data and the single-row
  prediction engine.
* A transform that learns nothing is both at once (:class:`TrivialEstimator`): ``fit`` checks
  the schema and returns the transform itself.
* Every component's *state* is its constructor's arguments (:meth:`Component.get_state`), and a
  component is rebuilt from a state only through its constructor (:meth:`Component.from_state`),
  so a component loaded from a file is checked exactly like one built in code. The layout of a
  state has a version per component type (:attr:`Component.state_version`).
"""

from __future__ import annotations

import abc
import collections.abc
import dataclasses
import functools
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar, overload

import pyarrow as pa
import typing_extensions

from onnxpipe._annotations import annotation_problem, parameter_annotations
from onnxpipe._limits import MAX_DENSIFIED_VALUES
from onnxpipe._progress import StepStatus
from onnxpipe.data._convert import ColumnValues, arrow_schema, from_arrow, to_arrow
from onnxpipe.data._loaders import as_data_view
from onnxpipe.data._view import DataView
from onnxpipe.errors import (
    ExportError,
    FrozenComponentError,
    InvalidArgumentError,
    ModelLoadError,
    ModelSaveError,
    OnnxPipeError,
    ShapeError,
)
from onnxpipe.schema import Schema, SparseVectorType

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = [
    "Component",
    "ComponentInfo",
    "Estimator",
    "EstimatorChain",
    "Transformer",
    "TransformerChain",
    "TrivialEstimator",
    "component",
    "register_type",
    "registered_components",
]

E = TypeVar("E", bound=OnnxPipeError)

TransformerT_co = typing_extensions.TypeVar(
    "TransformerT_co", bound="Transformer", covariant=True, default="Transformer"
)
"""What an :class:`Estimator` fits (and the last step of a chain); a bare ``Estimator`` is
``Estimator[Transformer]``."""

NextT = TypeVar("NextT", bound="Transformer")
"""The transformer an ``append``-ed step produces: the type of the chain's new last step."""


def _in_step(exc: E, index: int, step: str) -> E:
    """A copy of ``exc`` whose message says at which step of a chain it happened."""
    message = str(exc)
    if message.startswith(f"{step}: "):  # the step named itself already
        message = message[len(step) + 2 :]
    return type(exc)(f"step {index} ({step}): {message}")


_PARAMETERS: dict[type, dict[str, inspect.Parameter]] = {}


def _init_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The parameters of ``cls``'s constructor (without ``self``); a ``*args`` parameter is kept
    (its state is the list of values), ``**kwargs`` cannot be a state."""
    known = _PARAMETERS.get(cls)
    if known is not None:
        return known
    if cls.__init__ is object.__init__:  # type: ignore[misc]  # no constructor of its own: no parameters
        _PARAMETERS[cls] = {}
        return _PARAMETERS[cls]
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]  # type: ignore[misc]
    keywords = [p.name for p in parameters if p.kind is p.VAR_KEYWORD]
    if keywords:
        raise ModelSaveError(
            f"{cls.__qualname__}.__init__ takes **{keywords[0]}: its state cannot be its constructor's arguments; "
            "declare each parameter, or override get_state and from_state"
        )
    _PARAMETERS[cls] = {p.name: p for p in parameters}
    return _PARAMETERS[cls]


def _shown_type(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


class _ComponentType(abc.ABCMeta):
    """Freezes every component once its constructor returns (see :class:`Component`)."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        instance = super().__call__(*args, **kwargs)
        object.__setattr__(instance, "_frozen", True)
        return instance

    @property
    def __signature__(cls) -> inspect.Signature:
        # What help(), IDEs and the catalogs show: the constructor's parameters, not __call__'s.
        if cls.__init__ is object.__init__:  # type: ignore[misc]
            return inspect.Signature(return_annotation=cls)
        signature = inspect.signature(cls.__init__)  # type: ignore[misc]
        return signature.replace(parameters=list(signature.parameters.values())[1:], return_annotation=cls)


class Component(metaclass=_ComponentType):
    """What every estimator and transformer shares: immutable parameters, a state made of its
    constructor's arguments, and a name in the catalogs.

    * **Parameters** are the constructor's arguments, declared once in its signature, typed and
      checked there (with :mod:`onnxpipe._validation`). Once the constructor returns, the
      component is frozen: assigning an attribute raises
      :class:`~onnxpipe.errors.FrozenComponentError`; :meth:`with_parameters` builds a changed copy.
    * **State**: ``get_state()`` returns the arguments that rebuild the component, read from the
      attribute of the same name (or with a leading underscore), as scikit-learn's ``get_params``
      does. ``from_state(state, version)`` rebuilds it by calling the constructor with exactly those
      arguments: unknown or missing ones are refused, each is checked against the constructor's
      annotation, then the constructor's own checks run. A component whose attributes differ from
      its constructor's parameters overrides :meth:`get_state`. When the parameters change, bump
      :attr:`state_version` and turn the old layout into the new one in :meth:`upgrade_state`.
    * **Registration**: the :func:`component` class decorator, in the component's own module,
      gives it its catalog name and makes it known to persistence, the catalogs and the
      conformance suite (:mod:`onnxpipe.testing`).
    * **Export**: a transformer that can be exported implements ``export_onnx`` (the protocol is
      :class:`onnxpipe.export.OnnxExportable`).
    """

    state_version: ClassVar[int] = 1
    """The layout of this component type's state; saved with it."""

    catalog_name: ClassVar[str] = ""
    """The catalog method that builds this component (``"one_hot_encoding"``); set by :func:`component`."""

    conformance_skips: ClassVar[Mapping[str, str]] = {}
    """Conformance checks (:data:`onnxpipe.testing.CHECKS`) this type opts out of, each with the reason."""

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_frozen"):
            raise FrozenComponentError(
                f"{self._own_name()}: components are immutable, so {name!r} cannot be assigned after construction; "
                f"build a changed copy with .with_parameters({name}=...)"
            )
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if self.__dict__.get("_frozen"):
            raise FrozenComponentError(f"{self._own_name()}: components are immutable, so {name!r} cannot be deleted")
        object.__delattr__(self, name)

    @property
    def step_name(self) -> str:
        """How errors and reports name this step: its catalog name and the columns it works on,
        ``normalize_min_max(Features <- Raw)`` or ``sdca(Label, Features)``."""
        name = self.catalog_name or type(self).__name__
        state = self.__dict__
        output, source = state.get("output_column_name"), state.get("input_column_name")
        if isinstance(output, str):
            return f"{name}({output})" if source in (None, output) else f"{name}({output} <- {source})"
        label, features = state.get("label_column_name"), state.get("feature_column_name")
        if isinstance(label, str) and isinstance(features, str):
            return f"{name}({label}, {features})"
        return name

    def _own_name(self) -> str:
        try:
            return str(getattr(self, "step_name", "")) or type(self).__name__
        except Exception:  # a step_name reading an attribute not yet set
            return type(self).__name__

    def with_parameters(self, **changes: Any) -> Self:
        """A new component of the same type with some constructor arguments changed (this one is
        unchanged): ``trainer.with_parameters(l2_regularization=0.1)``."""
        unknown = sorted(set(changes) - set(_init_parameters(type(self))))
        if unknown:
            raise InvalidArgumentError(
                f"{self._own_name()}: with_parameters got unknown parameters {unknown}; "
                f"valid ones: {list(_init_parameters(type(self)))}"
            )
        return type(self)._construct({**self.get_state(), **changes})

    def get_state(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this component."""
        state: dict[str, Any] = {}
        for name, parameter in _init_parameters(type(self)).items():
            for attribute in (name, "_" + name):
                try:
                    value = getattr(self, attribute)
                    break
                except AttributeError:
                    continue
            else:
                raise ModelSaveError(
                    f"{self._own_name()}: its constructor argument {name!r} is not kept as an attribute {name!r} "
                    f"or {'_' + name!r}; {type(self).__qualname__} must override get_state() to say how it is rebuilt"
                )
            state[name] = list(value) if parameter.kind is parameter.VAR_POSITIONAL else value
        return state

    @classmethod
    def upgrade_state(cls, state: dict[str, Any], version: int) -> dict[str, Any]:
        """``state`` as ``state_version`` ``version`` (older than the current one) laid it out, in the
        current layout. No older layout exists for a component still at version 1."""
        raise ModelLoadError(f"{cls.__qualname__} has no upgrade from state version {version} to {cls.state_version}")

    @classmethod
    def from_state(cls, state: Mapping[str, Any], version: int | None = None) -> Self:
        """Rebuild a component from :meth:`get_state`'s result, through the constructor.

        Raises :class:`~onnxpipe.errors.ModelLoadError` for a version this onnxpipe does not know
        or for unknown, missing or mistyped arguments; the constructor raises for invalid values.
        """
        arguments = cls._current_state(state, version)
        parameters = _init_parameters(cls)
        unknown = sorted(set(arguments) - set(parameters), key=str)
        missing = sorted(set(parameters) - set(arguments))
        if unknown or missing:
            raise ModelLoadError(
                f"{cls.__qualname__}: its state has unknown fields {unknown} and lacks fields {missing}; "
                f"the constructor takes {list(parameters)}"
            )
        annotations = parameter_annotations(cls)
        for name, value in arguments.items():
            annotation = annotations.get(name, Any)
            if parameters[name].kind is inspect.Parameter.VAR_POSITIONAL:
                annotation = collections.abc.Sequence[annotation]  # type: ignore[valid-type]
            problem = annotation_problem(value, annotation)
            if problem:
                raise ModelLoadError(
                    f"{cls.__qualname__}: its state field {name!r} must be {_shown_type(annotation)} ({problem})"
                )
        return cls._construct(arguments)

    @classmethod
    def _construct(cls, arguments: Mapping[str, Any]) -> Self:
        """Call the constructor with a state's arguments (a ``*args`` parameter's list spread out)."""
        parameters = _init_parameters(cls)
        spread = any(p.kind is p.VAR_POSITIONAL for p in parameters.values())
        positional: list[Any] = []
        keywords: dict[str, Any] = {}
        for name, parameter in parameters.items():
            if name not in arguments:
                continue
            if parameter.kind is parameter.VAR_POSITIONAL:
                positional.extend(arguments[name])
                spread = False
            elif parameter.kind is parameter.POSITIONAL_ONLY or (
                spread and parameter.kind is parameter.POSITIONAL_OR_KEYWORD
            ):
                positional.append(arguments[name])  # comes before the *args, so it must be positional
            else:
                keywords[name] = arguments[name]
        return cls(*positional, **keywords)

    @classmethod
    def _current_state(cls, state: Mapping[str, Any], version: int | None) -> dict[str, Any]:
        """``state`` of layout ``version`` (None: the current one) in the current layout."""
        current = cls.state_version
        version = current if version is None else version
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ModelLoadError(f"{cls.__qualname__}: invalid state version {version!r:.40}")
        if version > current:
            raise ModelLoadError(
                f"{cls.__qualname__}: its state has version {version}, newer than the version {current} this "
                "onnxpipe reads; upgrade onnxpipe"
            )
        return dict(state) if version == current else cls.upgrade_state(dict(state), version)

    @classmethod
    def from_legacy_attributes(cls, attributes: dict[str, Any]) -> Self:
        """Rebuild a component from the attributes that saved-model format 1 stored (its ``__dict__``).

        The attributes are put on a bare instance only to read its constructor arguments back
        with :meth:`get_state`; the component returned is built by the constructor. A component
        whose format-1 state was something else overrides this.
        """
        bare = object.__new__(cls)
        vars(bare).update(attributes)
        return cls.from_state(bare.get_state(), 1)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickling (multiprocessing, deepcopy, Ray/Dask/Spark workers) goes through the state, so
        # no internals or ONNX Runtime sessions are pickled, and unpickling runs the constructor.
        return _from_state, (type(self), type(self).state_version, self.get_state())


def _from_state(cls: type[Component], version: int, state: dict[str, Any]) -> Component:
    return cls.from_state(state, version)


# --------------------------------------------------------------------------- registration

C = TypeVar("C", bound=type)


@dataclasses.dataclass(frozen=True)
class ComponentInfo:
    """One registered component type."""

    name: str
    """The name saved models record it under (its qualified name unless registered otherwise)."""
    cls: type[Component]
    catalog: str | None
    """The catalog that builds it, as a path from the context (``"transforms.categorical"``), or
    None for a type the user never builds (a fitted transformer, a helper)."""


_REGISTRY: dict[str, ComponentInfo] = {}
_BUILTIN_PACKAGES = ("onnxpipe.transforms", "onnxpipe.trainers")
_builtins_imported = False


def component(
    catalog_name: str | None = None, *, catalog: str | None = None, saved_as: str | None = None
) -> Callable[[C], C]:
    """Class decorator that registers a component, in its own module::

        @component("one_hot_encoding", catalog="transforms.categorical")
        class OneHotEncodingEstimator(Estimator["OneHotEncodingTransformer"]): ...  # fits one

        @component("one_hot_encoding")   # the fitted transformer: named like its estimator
        class OneHotEncodingTransformer(Transformer): ...

    ``catalog_name`` is how steps are named in messages and the method that builds it; with
    ``catalog`` (a path from :class:`~onnxpipe.MLContext`), ``ctx.<catalog>.<catalog_name>(...)``
    builds it with exactly the constructor's parameters. Registered components can be saved
    (under ``saved_as``, default: the class's qualified name) and are found by
    :func:`onnxpipe.testing.all_components`. Nothing else needs editing.
    """

    def register(cls: C) -> C:
        if not (isinstance(cls, type) and issubclass(cls, Component)):
            raise InvalidArgumentError(f"@component decorates a Component subclass, got {cls!r}")
        if catalog_name is not None:
            if not catalog_name.isidentifier():
                raise InvalidArgumentError(f"{cls.__qualname__}: catalog name {catalog_name!r} is not an identifier")
            cls.catalog_name = catalog_name
        if catalog is not None and not (catalog_name and all(p.isidentifier() for p in catalog.split("."))):
            raise InvalidArgumentError(
                f"{cls.__qualname__}: catalog {catalog!r} must be a dotted path like 'transforms.text', "
                "given with a catalog name"
            )
        register_type(cls, saved_as, catalog=catalog)
        return cls

    return register


def register_type(cls: type[Component], name: str | None = None, *, catalog: str | None = None) -> None:
    """Register ``cls`` under ``name`` (default: its qualified name); see :func:`component`."""
    key = name or cls.__qualname__
    known = _REGISTRY.get(key)
    if known is not None and known.cls is not cls:
        raise InvalidArgumentError(
            f"the component name {key!r} is already registered for {known.cls.__module__}.{known.cls.__qualname__}; "
            f"register {cls.__module__}.{cls.__qualname__} under another name (saved_as=...)"
        )
    if catalog is not None:
        for other in _REGISTRY.values():
            if other.cls is not cls and other.catalog == catalog and other.cls.catalog_name == cls.catalog_name:
                raise InvalidArgumentError(
                    f"ctx.{catalog}.{cls.catalog_name} already builds {other.cls.__qualname__}; "
                    f"give {cls.__qualname__} another catalog name"
                )
    _REGISTRY[key] = ComponentInfo(key, cls, catalog if catalog is not None else getattr(known, "catalog", None))


def registered_components() -> dict[str, ComponentInfo]:
    """Every registered component type by the name saved models record (onnxpipe's own are
    imported, and so registered, on the first call)."""
    global _builtins_imported
    if not _builtins_imported:
        for package in _BUILTIN_PACKAGES:
            module = importlib.import_module(package)
            for found in pkgutil.walk_packages(module.__path__, package + "."):
                importlib.import_module(found.name)
        _builtins_imported = True
    return dict(_REGISTRY)


def _taking_any_data(method: Callable[..., Any], what: str) -> Callable[..., Any]:
    """``method(self, data, ...)`` whose ``data`` may be any of :func:`as_data_view`'s kinds."""
    if getattr(method, "_takes_any_data", False):
        return method

    @functools.wraps(method)
    def wrapper(self: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(data, DataView):
            data = as_data_view(data, f"{self._own_name()}.{what}")
        return method(self, data, *args, **kwargs)

    wrapper._takes_any_data = True  # type: ignore[attr-defined]
    return wrapper


def sparse_inputs_densified(
    columns: Mapping[str, ColumnValues], schema: Schema, names: Sequence[str], step: Component
) -> Mapping[str, ColumnValues]:
    """``columns`` with the sparse vector columns among ``names`` as dense ``(rows, size)`` arrays,
    for a step that only reads dense values; a batch too large to densify is a ShapeError."""
    sparse_names = [n for n in names if n in schema and isinstance(schema[n].type, SparseVectorType)]
    if not sparse_names:
        return columns
    out = dict(columns)
    for name in sparse_names:
        matrix: Any = columns[name]
        rows, size = matrix.shape
        if rows * size > MAX_DENSIFIED_VALUES:
            raise ShapeError(
                f"{step._own_name()}: column {name!r} is a sparse vector of {size:,} slots, and this step reads dense "
                f"values only: {rows:,} rows of it would take {rows * size:,} values; use a step that takes sparse "
                "vectors, fewer slots (e.g. number_of_bits), or smaller batches"
            )
        out[name] = matrix.toarray()
    return out


class Transformer(Component, abc.ABC):
    """A fitted, frozen component that maps data to data."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "transform" in cls.__dict__:
            cls.transform = _taking_any_data(cls.__dict__["transform"], "transform")  # type: ignore[method-assign]

    @abc.abstractmethod
    def output_schema(self, input_schema: Schema) -> Schema:
        """The schema ``transform`` produces from ``input_schema``; raises SchemaError if unfit."""

    @abc.abstractmethod
    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        """The columns :meth:`map_columns` reads."""

    def written_columns(self, input_schema: Schema) -> list[str]:
        """The columns this step writes: new or retyped ones, and its ``output_column_name``
        (a step that replaces a column in place with the same type writes it too)."""
        output_schema = self.output_schema(input_schema)
        written = [c.name for c in output_schema.columns if input_schema.get(c.name) != c]
        own = getattr(self, "output_column_name", None)
        if isinstance(own, str) and own in output_schema and own not in written:
            written.append(own)
        return written

    @abc.abstractmethod
    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        """Compute the columns this step writes from the columns it reads, for one batch.

        ``columns`` holds at least the columns named by :meth:`input_columns`.
        """

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        """Add this step's ONNX nodes to ``ctx`` (see :mod:`onnxpipe.export`).

        Components that can be exported override this; the default names the step and says why
        it cannot be.
        """
        raise ExportError(f"{self.step_name} cannot be exported to ONNX: {self.onnx_unexportable_reason}")

    onnx_unexportable_reason = "it has no ONNX export"
    onnx_min_opset = 13  # the lowest default-domain opset this step's export needs

    accepts_sparse: ClassVar[bool] = False
    """Whether :meth:`map_columns` takes a sparse vector column as a scipy CSR matrix. Steps that
    do not get it densified (:func:`sparse_inputs_densified`), up to a size limit."""

    def step_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        """:meth:`map_columns`, with sparse inputs densified for a step that does not take them;
        what every caller (transform, chains, the prediction engine) runs."""
        if not self.accepts_sparse:
            columns = sparse_inputs_densified(columns, input_schema, self.input_columns(input_schema), self)
        return self.map_columns(columns, input_schema, n_rows)

    def transform(self, data: DataView) -> DataView:
        """Lazily apply this transformer; the schema is checked now, the data when read."""
        in_schema = data.schema
        out_schema = self.output_schema(in_schema)
        out_arrow = arrow_schema(out_schema)
        names = list(self.input_columns(in_schema))

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in data.batches():
                yield self._transform_batch(batch, in_schema, out_schema, out_arrow, names)

        return DataView(out_schema, batches, data.row_count)

    def _transform_batch(
        self, batch: pa.RecordBatch, in_schema: Schema, out_schema: Schema, out_arrow: pa.Schema, names: list[str]
    ) -> pa.RecordBatch:
        inputs = {n: from_arrow(batch.column(n), in_schema[n].type) for n in names}
        produced = self.step_columns(inputs, in_schema, batch.num_rows)
        arrays = [
            to_arrow(produced[c.name], c.type, c.name) if c.name in produced else batch.column(c.name)
            for c in out_schema.columns
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=out_arrow)

    @overload
    def append(self, other: TransformerChain[NextT]) -> TransformerChain[NextT]: ...
    @overload
    def append(self, other: NextT) -> TransformerChain[NextT]: ...
    def append(self, other: Transformer) -> TransformerChain[Transformer]:
        """A :class:`TransformerChain` of this step followed by ``other`` (a chain is spliced in
        step by step). The chain is typed by its last step, ``other`` (or ``other``'s last step):
        ``scaler.append(model).last_transformer`` is ``model``, typed as ``model`` is."""
        return TransformerChain([self]).append(other)

    @property
    def steps(self) -> tuple[Transformer, ...]:
        return (self,)

    def __rich__(self) -> Any:
        """The fitted steps in order (each names its columns); a notebook shows this table."""
        from rich.table import Table
        from rich.text import Text

        from onnxpipe._display import shown

        table = Table(title=f"{type(self).__name__}: {len(self.steps)} step(s)", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("Step (output <- input columns)")
        table.add_column("ONNX export")
        for k, step in enumerate(self.steps):
            exportable = type(step).export_onnx is not Transformer.export_onnx
            table.add_row(str(k), Text(shown(step.step_name)), "yes" if exportable else "no")
        return table

    def _repr_html_(self) -> str:
        from onnxpipe._display import render_html

        return render_html(self)


Transformer.transform = _taking_any_data(Transformer.transform, "transform")  # type: ignore[method-assign]


class Estimator(Component, abc.ABC, Generic[TransformerT_co]):
    """An immutable specification that learns a Transformer from data.

    ``Estimator[T]`` fits a ``T`` (ML.NET's ``IEstimator<TTransformer>``): every concrete
    estimator names what its ``fit`` returns (``class KMeansTrainer(Estimator[KMeansModel])``), so
    type checkers and IDEs know the type of a fitted model, and of a fitted chain's last step. A
    bare ``Estimator`` is ``Estimator[Transformer]``.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "fit" in cls.__dict__ and not getattr(cls.__dict__["fit"], "__isabstractmethod__", False):
            cls.fit = _taking_any_data(cls.__dict__["fit"], "fit")  # type: ignore[method-assign]

    @abc.abstractmethod
    def output_schema(self, input_schema: Schema) -> Schema:
        """The schema the fitted transformer will produce; raises SchemaError if unfit."""

    @abc.abstractmethod
    def fit(self, data: DataView) -> TransformerT_co:
        """Learn from ``data`` and return a new frozen transformer."""

    @overload
    def append(self, other: EstimatorChain[NextT]) -> EstimatorChain[NextT]: ...
    @overload
    def append(self, other: Estimator[NextT]) -> EstimatorChain[NextT]: ...
    def append(self, other: Estimator) -> EstimatorChain[Transformer]:
        """An :class:`EstimatorChain` of this estimator followed by ``other`` (a chain is spliced
        in step by step). The chain is typed by what its last step fits: with ``other`` an
        ``Estimator[T]`` (or an ``EstimatorChain[T]``), the result is an ``EstimatorChain[T]``,
        whose ``fit`` returns a ``TransformerChain[T]``."""
        return EstimatorChain([self]).append(other)


class TrivialEstimator(Transformer, Estimator[TransformerT_co]):
    """A transform with nothing to learn: it is its own estimator, and ``fit`` returns it.

    A subclass names itself as what it fits, ``class Doubling(TrivialEstimator["Doubling"])``, so
    that chains ending with it are typed by it; ``fit`` is typed to return the instance's own class
    either way.
    """

    # Self is the subclass, which is the TransformerT_co it declares; a type checker cannot tie
    # the two together, hence the ignore.
    def fit(self, data: DataView) -> Self:  # type: ignore[override]
        self.output_schema(data.schema)
        return self

    @overload
    def append(self, other: EstimatorChain[NextT]) -> EstimatorChain[NextT]: ...
    @overload
    def append(self, other: Estimator[NextT]) -> EstimatorChain[NextT]: ...
    @overload
    def append(self, other: TransformerChain[NextT]) -> TransformerChain[NextT]: ...
    @overload
    def append(self, other: NextT) -> TransformerChain[NextT]: ...
    def append(self, other: Any) -> Any:
        """An :class:`EstimatorChain` when ``other`` is an estimator (a trivial one included),
        a :class:`TransformerChain` when it is only a transformer; either is typed by ``other``
        (see :meth:`Estimator.append` and :meth:`Transformer.append`)."""
        if isinstance(other, Estimator):
            return EstimatorChain([self]).append(other)
        return TransformerChain([self]).append(other)


class TransformerChain(Transformer, Generic[TransformerT_co]):
    """Fitted steps applied in order.

    ``TransformerChain[T]`` ends with a ``T`` (ML.NET's ``TransformerChain<TLastTransformer>``):
    :attr:`last_transformer` is typed ``T``, so ``model.last_transformer`` of a fitted pipeline
    ending with a trainer is its trained model, with that model's type. A bare ``TransformerChain``
    is ``TransformerChain[Transformer]``.
    """

    accepts_sparse = True  # each step densifies what it needs itself (step_columns)

    def __init__(self: TransformerChain[Transformer], steps: Sequence[Transformer] = ()) -> None:
        flat: list[Transformer] = []
        for s in steps:
            if not isinstance(s, Transformer):
                raise TypeError(f"a TransformerChain holds transformers, got {type(s).__name__}")
            flat.extend(s.steps)
        self._steps = tuple(flat)

    @property
    def steps(self) -> tuple[Transformer, ...]:
        return self._steps

    @property
    def step_name(self) -> str:
        return " -> ".join(s.step_name for s in self._steps) or "TransformerChain()"

    @property
    def last_transformer(self) -> TransformerT_co:
        """The last step (ML.NET's ``LastTransformer``): a fitted pipeline's trained model,
        typed as the chain is (``TransformerChain[T]`` ends with a ``T``). An empty chain has none:
        :class:`~onnxpipe.errors.InvalidArgumentError`."""
        if not self._steps:
            raise InvalidArgumentError(
                "TransformerChain.last_transformer: the chain is empty, so it has no last transformer; "
                "append a transformer first"
            )
        # A chain is only built typed by its last step (append, EstimatorChain.fit).
        return self._steps[-1]  # type: ignore[return-value]

    @overload
    def append(self, other: TransformerChain[NextT]) -> TransformerChain[NextT]: ...
    @overload
    def append(self, other: NextT) -> TransformerChain[NextT]: ...
    def append(self, other: Transformer) -> TransformerChain[Transformer]:
        """A new chain: these steps, then ``other`` (a chain's steps are spliced in); this one is
        unchanged. It is typed by its new last step, ``other`` (or ``other``'s last step)."""
        return TransformerChain([*self._steps, other])

    def __reduce__(self) -> tuple[Any, ...]:
        # Step by step, so that a custom_mapping step (a user function, pickled by reference)
        # can travel to worker processes next to steps that go through the saved-model format.
        return (TransformerChain, (list(self._steps),))

    def schemas(self, input_schema: Schema) -> list[Schema]:
        """The schema before each step and after the last (``len(steps) + 1`` schemas)."""
        out = [input_schema]
        for i, step in enumerate(self._steps):
            try:
                out.append(step.output_schema(out[-1]))
            except OnnxPipeError as exc:
                raise _in_step(exc, i, step.step_name) from exc
        return out

    def output_schema(self, input_schema: Schema) -> Schema:
        return self.schemas(input_schema)[-1]

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return input_schema.names

    def written_columns(self, input_schema: Schema) -> list[str]:
        schemas = self.schemas(input_schema)
        written = [n for step, before in zip(self._steps, schemas, strict=False) for n in step.written_columns(before)]
        return list(dict.fromkeys(written))

    def result_columns(self, input_schema: Schema) -> list[str]:
        """The columns the pipeline gives its user: written by a step and read by no later step
        (a trainer's Score and PredictedLabel, not the Features it reads, nor the key label
        ``map_value_to_key`` made for its training); what ``onnxpipe predict`` writes and
        ``convert_to_onnx`` exports by default."""
        schemas = self.schemas(input_schema)
        written: dict[str, int] = {}
        last_read: dict[str, int] = {}
        for i, step in enumerate(self._steps):
            last_read.update(dict.fromkeys(step.input_columns(schemas[i]), i))
            # What a fitted trainer read in training only (its label, its weights) is no result either.
            trained_on = (getattr(step, a, None) for a in ("label_column_name", "example_weight_column_name"))
            last_read.update(dict.fromkeys((n for n in trained_on if isinstance(n, str)), i))
            written.update(dict.fromkeys(step.written_columns(schemas[i]), i))
        final = schemas[-1]
        results = [n for n in final.names if n in written and last_read.get(n, -1) <= written[n]]
        return results or [n for n in final.names if n in written]

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        values = dict(columns)
        schema = input_schema
        for step in self._steps:
            produced = step.step_columns(values, schema, n_rows)
            schema = step.output_schema(schema)
            values.update(produced)
        return {n: values[n] for n in schema.names if n in values}

    def transform(self, data: DataView) -> DataView:
        self.schemas(data.schema)  # check every step before any data flows
        for step in self._steps:
            data = step.transform(data)
        return data

    def __len__(self) -> int:
        return len(self._steps)

    def __getitem__(self, index: int) -> Transformer:
        return self._steps[index]

    def __repr__(self) -> str:
        return "TransformerChain([" + ", ".join(repr(s) for s in self._steps) + "])"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TransformerChain) and other._steps == self._steps

    def __hash__(self) -> int:
        return hash(self._steps)


class EstimatorChain(Estimator[TransformerChain[TransformerT_co]]):
    """Estimators fitted in order, each on the output of the ones before it.

    ``EstimatorChain[T]`` ends with an ``Estimator[T]`` (ML.NET's ``EstimatorChain<TLastTransformer>``),
    so its ``fit`` returns a ``TransformerChain[T]``, whose ``last_transformer`` is a ``T``::

        pipeline = ctx.transforms.concatenate("Features", "A", "B").append(
            ctx.binary_classification.trainers.sdca_logistic_regression()
        )  # EstimatorChain[LinearBinaryModel]
        model = pipeline.fit(data)  # TransformerChain[LinearBinaryModel]
        model.last_transformer.weights  # a LinearBinaryModel's: no cast needed

    A bare ``EstimatorChain`` is ``EstimatorChain[Transformer]``.
    """

    def __init__(self: EstimatorChain[Transformer], steps: Sequence[Estimator] = ()) -> None:
        flat: list[Estimator] = []
        for s in steps:
            if isinstance(s, EstimatorChain):
                flat.extend(s.steps)
            elif isinstance(s, Estimator):
                flat.append(s)
            else:
                raise TypeError(f"an EstimatorChain holds estimators, got {type(s).__name__}")
        self._steps = tuple(flat)

    @property
    def steps(self) -> tuple[Estimator, ...]:
        return self._steps

    @property
    def step_name(self) -> str:
        return " -> ".join(s.step_name for s in self._steps) or "EstimatorChain()"

    @overload
    def append(self, other: EstimatorChain[NextT]) -> EstimatorChain[NextT]: ...
    @overload
    def append(self, other: Estimator[NextT]) -> EstimatorChain[NextT]: ...
    def append(self, other: Estimator) -> EstimatorChain[Transformer]:
        """A new chain: these steps, then ``other`` (a chain's steps are spliced in); this one is
        unchanged. It is typed by what its new last step fits (see :meth:`Estimator.append`)."""
        return EstimatorChain([*self._steps, other])

    def output_schema(self, input_schema: Schema) -> Schema:
        schema = input_schema
        for i, step in enumerate(self._steps):
            try:
                schema = step.output_schema(schema)
            except OnnxPipeError as exc:
                raise _in_step(exc, i, step.step_name) from exc
        return schema

    def fit(self, data: DataView) -> TransformerChain[TransformerT_co]:
        """Fit each step on the output of the fitted steps before it; the fitted chain (typed
        by the last step's transformer) holds the fitted steps in order."""
        self.output_schema(data.schema)  # fail before any training
        fitted: list[Transformer] = []
        with StepStatus("fitting", len(self._steps)) as status:  # shown on a terminal when fitting takes long
            for i, step in enumerate(self._steps):
                status.step(i, step.step_name)
                try:
                    model = step.fit(data)
                except OnnxPipeError as exc:
                    raise _in_step(exc, i, step.step_name) from exc
                fitted.append(model)
                if i + 1 < len(self._steps):
                    data = model.transform(data)
        # The last step fitted a TransformerT_co: the chain is typed by it.
        return TransformerChain(fitted)  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self._steps)

    def __repr__(self) -> str:
        return "EstimatorChain([" + ", ".join(repr(s) for s in self._steps) + "])"


register_type(TransformerChain)
register_type(EstimatorChain)
