"""Inspecting ONNX models: what Netron's Model Properties shows, and schema classes for a model.

:func:`inspect_model` describes a model file, :func:`render_model_info` turns that description
into rich tables, and :func:`generate_schema_code` writes the ``OnnxInput`` / ``OnnxOutput``
dataclasses a user declares to apply the model.

Everything a model says is data. In the tables every name, type, dimension, property and
metadata value goes through :func:`onnxpipe._display.shown` into a :class:`rich.text.Text` (never
markup). In generated code, names reach only ASCII string literals and comments (every other
character escaped), identifiers are ASCII and derived from the names, numbers are Python ints,
and the finished source is parsed and checked to hold nothing but the expected imports and
dataclasses of annotated fields before it is returned.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import json
import keyword
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from onnxpipe._display import quoted, shown
from onnxpipe.errors import InvalidArgumentError, ModelError, SchemaError
from onnxpipe.runtime._model import (
    MLNET_UNUSED,
    BatchAxis,
    ModelInfo,
    TensorInfo,
    batch_axes,
    describe_model,
    load_model,
)
from onnxpipe.schema import (
    AnyRankTensorType,
    Column,
    ColumnType,
    DType,
    ImageType,
    KeyType,
    MapType,
    OptionalType,
    Schema,
    SequenceType,
    TensorType,
    column_type_from_json,
)

if TYPE_CHECKING:  # rich is imported by the functions that display (import onnxpipe stays light)
    from rich.console import RenderableType
    from rich.table import Table

__all__ = [
    "check_generated_code",
    "generate_schema_code",
    "generate_schema_code_for_columns",
    "inspect_model",
    "render_model_info",
]

_METADATA_WIDTH = 80
_DOC_WIDTH = 300
_LINE_LENGTH = 120  # of generated code


def inspect_model(path: str | Path) -> ModelInfo:
    """Describe the ONNX model at ``path``: inputs, outputs, opsets, producer, metadata.

    Raises :class:`~onnxpipe.errors.DataFileNotFoundError` for a missing file and
    :class:`~onnxpipe.errors.ModelLoadError` for a malformed or unsafe one.
    """
    loaded = load_model(model_file=path, max_bytes=None)  # describing allocates nothing
    return describe_model(loaded.proto, str(path))


# --------------------------------------------------------------------------------------------
# Tables


def _truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _io_table(info: ModelInfo) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    title = Text(shown(Path(info.path).name)) if info.path else None  # a file name is not markup
    table = Table("Input/Output", "Name", "Type", "Dimensions", title=title, box=box.SQUARE)
    # Tensor names are data, never markup: escaped Text cells, folded when long.
    for column in table.columns[1:]:
        column.overflow = "fold"
    for kind, tensors in (("Input", info.inputs), ("Output", info.outputs)):
        for t in tensors:
            table.add_row(Text(kind), Text(shown(t.name)), Text(shown(t.type_text)), Text(shown(t.dims_text())))
    return table


def _properties(info: ModelInfo) -> list[tuple[str, str]]:
    rows = [("Format", f"ONNX v{info.ir_version}")]
    rows.append(("Opsets", "\n".join(f"{shown(domain)}: {version}" for domain, version in info.opsets.items())))
    producer = shown(" ".join(p for p in (info.producer_name, info.producer_version) if p))
    # Unset fields are left out, as Netron does; an empty row says nothing.
    optional = [
        ("Producer", producer),
        ("Domain", shown(info.domain)),
        ("Model version", str(info.model_version) if info.model_version else ""),
        ("Graph", shown(info.graph_name)),
        ("Description", _truncate(_lines(info.doc_string.strip()), _DOC_WIDTH)),
    ]
    rows.extend((k, v) for k, v in optional if v)
    if info.initializers_as_inputs:
        rows.append(("Weights listed as inputs", str(len(info.initializers_as_inputs))))
    axes = batch_axes(info)
    if axes:
        lines = [f"{shown(name)}: {'yes' if a.is_batch else 'no'}, {shown(a.reason)}" for name, a in axes.items()]
        rows.append(("Batch dimension", "\n".join(lines)))
    columns = _exported_columns(info)
    if columns:
        rows.append(("Columns (onnxpipe)", "\n".join(f"{shown(n)}: {shown(t)}" for n, t in columns[:_DOC_WIDTH])))
    return rows


def _exported_columns(info: ModelInfo) -> list[tuple[str, str]]:
    """The column types an onnxpipe export records in its metadata (key types with their values,
    slot-named vectors...), as ``apply_onnx_model`` gives them back; [] for other models."""
    from onnxpipe.export import COLUMNS_METADATA_KEY

    raw = info.metadata.get(COLUMNS_METADATA_KEY)
    if raw is None:
        return []
    try:
        return [(str(e["name"]), str(column_type_from_json(e["type"]))) for e in json.loads(raw)]
    except (ValueError, KeyError, TypeError, SchemaError, RecursionError):
        return []  # damaged metadata: the table above shows the model's own types


def _lines(text: str) -> str:
    """Multi-line text with each line escaped (line breaks kept, everything else unprintable shown)."""
    return "\n".join(shown(line, _DOC_WIDTH) for line in text.splitlines()[:_DOC_WIDTH])


def _properties_table(info: ModelInfo) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table("Property", "Value", box=box.SQUARE)
    table.columns[1].overflow = "fold"
    for key, value in _properties(info):
        table.add_row(Text(key), Text(value))
    return table


def _metadata_table(info: ModelInfo) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table("Metadata", "Value", box=box.SQUARE)
    table.columns[1].overflow = "fold"
    for key, value in info.metadata.items():
        table.add_row(Text(shown(key)), Text(_truncate(shown(value), _METADATA_WIDTH)))
    return table


def render_model_info(info: ModelInfo) -> RenderableType:
    """Rich tables for a model: its inputs and outputs, its properties, and its metadata if any."""
    from rich.console import Group

    parts: list[RenderableType] = [_io_table(info), _properties_table(info)]
    if info.metadata:
        parts.append(_metadata_table(info))
    return Group(*parts)


# --------------------------------------------------------------------------------------------
# Schema code generation

# ML.NET's exports carry these placeholder tensors (slot names, key values); nobody feeds them.

# Inside list/dict annotations the schema reads Python's own types (float is float32, int int64).
_PY_NAMES = {DType.FLOAT32: "float", DType.INT64: "int", DType.STRING: "str", DType.BOOL: "bool"}


def _numpy_name(dtype: DType) -> str:
    if dtype is DType.BOOL:
        return "np.bool_"
    if dtype is DType.STRING:
        return "np.str_"
    if dtype.ml_dtypes_name is not None:  # bfloat16, float8...: ml_dtypes' scalar types (_module imports it)
        return f"ml_dtypes.{dtype.ml_dtypes_name}"
    return f"np.{dtype.value}"


def _inner_annotation(ct: ColumnType) -> str | None:
    """The annotation of a map value or sequence element, or None where a class cannot declare it."""
    if isinstance(ct, TensorType):
        if not ct.is_scalar:
            return None
        return _PY_NAMES.get(ct.dtype, _numpy_name(ct.dtype))
    if isinstance(ct, MapType):
        value = _inner_annotation(ct.value)
        key = _PY_NAMES.get(ct.key, _numpy_name(ct.key))
        return None if value is None else f"dict[{key}, {value}]"
    if not isinstance(ct, SequenceType):  # optionals are declared by _value_annotation
        return None
    # A list of scalars reads as a vector column, so only sequences of maps or sequences work.
    if isinstance(ct.element, TensorType):
        return None
    element = _inner_annotation(ct.element)
    return None if element is None else f"list[{element}]"


def _row_dims(dims: tuple[int | str | None, ...], batch: bool) -> list[int]:
    """The model's shape for one row: an unknown first dimension is 1 when it is the batch, other
    unknowns -1."""
    return [_int(d) if isinstance(d, int) and d >= 0 else (1 if i == 0 and batch else -1) for i, d in enumerate(dims)]


def _int(value: object) -> int:
    """A dimension as a Python int literal (numpy integers accepted, anything else refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ModelError(f"schema code: dimension {quoted(value)} is not an integer")
    return int(value)


def _dims_literal(dims: list[int]) -> str:
    return ", ".join(str(_int(d)) for d in dims)


def _identifier(name: str) -> str:
    """A snake_case Python identifier for a tensor name (uniqueness is handled by the caller)."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()
    if not text:
        return "tensor"
    if text[0].isdigit():
        # Not a leading underscore: schema classes ignore underscore-prefixed fields.
        text = "tensor_" + text
    if keyword.iskeyword(text):
        text += "_"
    return text


def _escaped(text: str, quote: str = "") -> str:
    """``text`` as printable ASCII: backslash, ``quote`` and every other character escaped as Python does."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\\" or ch == quote:
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def _literal(text: str) -> str:
    """A double-quoted ASCII string literal for ``text`` (the quotes users write)."""
    if not isinstance(text, str):
        raise ModelError(f"schema code: name {quoted(text)} is not text")
    literal = '"' + _escaped(text, '"') + '"'
    assert ast.literal_eval(literal) == text
    return literal


@dataclasses.dataclass
class _Imports:
    """What the generated classes use, so that the code imports nothing it does not need."""

    np: bool = False
    npt: bool = False
    vector_type: bool = False
    annotated: bool = False
    key_type: bool = False
    image_type: bool = False

    def onnxpipe_names(self) -> str:
        names = ["ColumnName"]
        names += ["ImageType"] if self.image_type else []
        names += ["KeyType"] if self.key_type else []
        names += ["VectorType"] if self.vector_type else []
        return ", ".join(names)


def _annotated(attr: str, parts: list[str]) -> list[str]:
    """``attr: Annotated[...]``, wrapped the way ruff format would when it passes 120 columns."""
    line = f"    {attr}: Annotated[{', '.join(parts)}]"
    if len(line) <= _LINE_LENGTH:
        return [line]
    inner = "        " + ", ".join(parts)
    if len(inner) <= _LINE_LENGTH:
        return [f"    {attr}: Annotated[", inner, "    ]"]
    return [f"    {attr}: Annotated[", *(f"        {p}," for p in parts), "    ]"]


def _field_lines(t: TensorInfo, attr: str, *, imports: _Imports, batch: bool) -> list[str]:
    column = f"ColumnName({_literal(t.name)})"
    ct = t.column_type
    annotation: str | None = None
    extra: list[str] = []
    if isinstance(ct, TensorType):
        if ct.is_scalar:
            annotation = "str" if ct.dtype is DType.STRING else _numpy_name(ct.dtype)
            imports.np |= ct.dtype is not DType.STRING
        else:
            annotation = f"npt.NDArray[{_numpy_name(ct.dtype)}]"
            extra = ["VectorType(" + _dims_literal(_row_dims(t.dims or (), batch)) + ")"]
            imports.np = imports.npt = imports.vector_type = True
    elif ct is not None:
        annotation, extra = _value_annotation(ct, imports)
    imports.annotated = True
    if annotation is None:
        about = _escaped(shown(t.type_text + t.dims_text(), 80))
        comment = f"    # unsupported ONNX type: {about}; onnxpipe cannot read or feed this tensor"
        return [comment, *_annotated(attr, ["object", column])]
    return _annotated(attr, [annotation, column, *extra])


def _column_field_lines(column: Column, attr: str, *, imports: _Imports) -> list[str]:
    """A field for a column of a pipeline's schema (one row's type: no batch dimension)."""
    parts: list[str] = []
    ct = column.type
    if isinstance(ct, ImageType):
        size = [ct.height, ct.width]
        dims = "" if size == [None, None] else ", ".join("None" if d is None else str(_int(d)) for d in size)
        parts = ["npt.NDArray[np.uint8]", f"ColumnName({_literal(column.name)})", f"ImageType({dims})"]
        imports.np = imports.npt = imports.image_type = True
    elif isinstance(ct, TensorType):
        extra = [_key_marker(ct)] if isinstance(ct, KeyType) else []
        imports.key_type |= bool(extra)
        if ct.is_scalar:
            parts = ["str" if ct.dtype is DType.STRING else _numpy_name(ct.dtype)]
            imports.np |= ct.dtype is not DType.STRING
        else:
            parts = [f"npt.NDArray[{_numpy_name(ct.dtype)}]"]
            extra.append("VectorType(" + _dims_literal([-1 if d is None else d for d in ct.shape]) + ")")
            imports.np = imports.npt = imports.vector_type = True
        parts += [f"ColumnName({_literal(column.name)})", *extra]
    else:
        annotation, extra = _value_annotation(ct, imports)
        parts = [annotation or "object", f"ColumnName({_literal(column.name)})", *extra]
    imports.annotated = True
    return _annotated(attr, parts)


_MAX_KEY_VALUES_IN_CODE = 1000  # beyond, a class declares only the key count


def _key_marker(ct: KeyType) -> str:
    """``KeyType(n, [values], value_dtype="...")``: the values as literals when they are few and
    finite; floats name their type (a Python float would read as float32)."""
    if ct.count is None:
        return "KeyType()"
    values = ct.values
    items = [] if values is None or len(values) > _MAX_KEY_VALUES_IN_CODE else list(values.items)
    if not items or any(isinstance(v, float) and not math.isfinite(v) for v in items):
        return f"KeyType({_int(ct.count)})"
    assert values is not None
    if values.dtype is DType.STRING:
        shown = [_literal(v) for v in items]
    else:
        shown = [repr(bool(v)) if values.dtype is DType.BOOL else repr(v) for v in items]
    default = {DType.STRING, DType.BOOL, DType.INT64, DType.FLOAT32}
    kind = "" if values.dtype in default else f", value_dtype={_literal(values.dtype.value)}"
    return f"KeyType({_int(ct.count)}, [{', '.join(shown)}]{kind})"


def _value_annotation(ct: ColumnType, imports: _Imports) -> tuple[str | None, list[str]]:
    """The annotation (None where a class cannot declare it) and markers of a sequence, map or
    optional column: ``list[npt.NDArray[...]]`` for a sequence of tensors (``VectorType`` giving
    the elements' shape when their rank is known), ``X | None`` for an optional."""
    if isinstance(ct, OptionalType):
        element = ct.element
        inner: str | None
        if isinstance(element, TensorType) and not element.is_scalar:
            imports.np = imports.npt = True
            inner, extra = f"npt.NDArray[{_numpy_name(element.dtype)}]", _element_dims(element, imports)
        else:
            inner, extra = _value_annotation(element, imports)
        return (None, []) if inner is None else (f"{inner} | None", extra)
    if isinstance(ct, SequenceType) and isinstance(ct.element, TensorType):
        imports.np = imports.npt = True
        return f"list[npt.NDArray[{_numpy_name(ct.element.dtype)}]]", _element_dims(ct.element, imports)
    annotation = _inner_annotation(ct)
    imports.np |= annotation is not None and "np." in annotation
    return annotation, []


def _element_dims(ct: TensorType, imports: _Imports) -> list[str]:
    """``VectorType(...)`` for sequence elements of known rank (none for any rank or scalars)."""
    if isinstance(ct, AnyRankTensorType) or ct.is_scalar:
        return []
    imports.vector_type = True
    return ["VectorType(" + _dims_literal([-1 if d is None else d for d in ct.shape]) + ")"]


_Fields = list[tuple[str, Callable[[str], list[str]]]]  # (column or tensor name, the lines for an attribute)


def _class_lines(name: str, fields: _Fields) -> list[str]:
    """A dataclass with one field per ``(name, lines_for_attribute)``; attributes made unique."""
    lines = ["@dataclass", f"class {name}:"]
    used: set[str] = set()
    body: list[str] = []
    for field_name, field_lines in fields:
        base = attr = _identifier(field_name)
        n = 2
        while attr in used:
            attr = f"{base.rstrip('_')}_{n}"  # class_ and Class give class_ and class_2
            n += 1
        used.add(attr)
        body.extend(field_lines(attr))
    return lines + (body or ["    pass"])


def _tensor_fields(tensors: tuple[TensorInfo, ...], imports: _Imports, batch: dict[str, bool] | bool) -> _Fields:
    """Fields for inputs (``batch``: whether each one's first dimension is the batch) or outputs
    (one flag: whether the model is scored in batches)."""
    return [
        (t.name, functools.partial(_field_lines, t, imports=imports, batch=_flag(batch, t.name)))
        for t in tensors
        if not MLNET_UNUSED.match(t.name)
    ]


def _outputs_batched(info: ModelInfo, axes: dict[str, BatchAxis]) -> bool:
    """Whether the outputs' unknown first dimensions are the batch: only when some input has a
    batch axis and no input's unknown first dimension was judged not to be one (a length)."""
    unknown_first = [t.name for t in info.inputs if t.dims and not (isinstance(t.dims[0], int) and t.dims[0] >= 0)]
    batch = [axes[name].is_batch for name in unknown_first if name in axes]
    # Without any batch input, an unknown output size depends on the data (Unique, NonZero).
    return bool(batch) and all(batch)


def _flag(batch: dict[str, bool] | bool, name: str) -> bool:
    return batch.get(name, True) if isinstance(batch, dict) else batch


def _column_fields(schema: Schema, imports: _Imports) -> _Fields:
    return [(c.name, functools.partial(_column_field_lines, c, imports=imports)) for c in schema.columns]


_CLASS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
# Names the generated module imports: a class named like one would shadow it.
_IMPORTED = {"dataclass", "Annotated", "ml_dtypes", "np", "npt", "ColumnName", "ImageType", "KeyType", "VectorType"}


def _check_class_name(name: str, option: str) -> None:
    if (
        not isinstance(name, str)
        or not _CLASS_NAME.fullmatch(name)
        or keyword.iskeyword(name)
        or (name.startswith("__") and name.endswith("__"))
        or name in _IMPORTED
    ):
        raise InvalidArgumentError(f"{option}={quoted(name)} is not a valid Python class name; use e.g. 'OnnxInput'")


def generate_schema_code(
    info: ModelInfo,
    input_class: str = "OnnxInput",
    output_class: str = "OnnxOutput",
    *,
    batch_dimension: bool | Mapping[str, bool] | None = None,
) -> str:
    """Python source declaring the model's inputs and outputs as two annotated dataclasses.

    Field names are snake_case identifiers derived from the tensor names, and ``ColumnName``
    keeps each exact tensor name. Shapes are one row's: an unknown first dimension becomes 1 when
    it is the batch (as ``apply_onnx_model`` decides it, or as ``batch_dimension`` states it; see
    :func:`batch_axes`), any other unknown dimension -1.
    """
    axes = batch_axes(info, batch_dimension)
    imports = _Imports()
    source = ascii(Path(info.path).name) if info.path else "an ONNX model"
    return _module(
        source,
        (input_class, _tensor_fields(info.inputs, imports, {n: a.is_batch for n, a in axes.items()})),
        (output_class, _tensor_fields(info.outputs, imports, _outputs_batched(info, axes))),
        imports,
    )


def generate_schema_code_for_columns(
    input_schema: Schema,
    output_schema: Schema,
    *,
    source: str = "a saved pipeline",
    input_class: str = "ModelInput",
    output_class: str = "ModelOutput",
) -> str:
    """Python source declaring a pipeline's input and output columns as two annotated dataclasses
    (what ``create_prediction_engine`` takes); ``source`` names the model in the header comment."""
    imports = _Imports()
    return _module(
        ascii(source),
        (input_class, _column_fields(input_schema, imports)),
        (output_class, _column_fields(output_schema, imports)),
        imports,
    )


def _module(source: str, inputs: tuple[str, _Fields], outputs: tuple[str, _Fields], imports: _Imports) -> str:
    (input_class, input_fields), (output_class, output_fields) = inputs, outputs
    _check_class_name(input_class, "input_class")
    _check_class_name(output_class, "output_class")
    if input_class == output_class:
        raise InvalidArgumentError(f"input_class and output_class are both {input_class!r}; give them different names")
    classes = [_class_lines(input_class, input_fields), _class_lines(output_class, output_fields)]
    # The low-precision types are ml_dtypes' (npt.NDArray[ml_dtypes.int4] may need no np at all).
    body = "\n".join(line for lines in classes for line in lines)
    imports.np = imports.np and re.search(r"\bnp\.", body) is not None
    # A comment, not a docstring: repr() of a file name is always safe in a comment.
    blocks = [[f"# Schema classes for {source}, generated by onnxpipe."], ["from dataclasses import dataclass"]]
    if imports.annotated:
        blocks[1].append("from typing import Annotated")
        third_party = ["import ml_dtypes"] if re.search(r"\bml_dtypes\.", body) else []
        third_party += ["import numpy as np"] if imports.np else []
        third_party += ["import numpy.typing as npt"] if imports.npt else []
        blocks.append([*third_party, f"from onnxpipe import {imports.onnxpipe_names()}"])
    out = [line for block in blocks for line in [*block, ""]]
    out.append("")
    out.extend(classes[0])
    out.extend(["", ""])
    out.extend(classes[1])
    code = "\n".join(out) + "\n"
    check_generated_code(code)
    return code


# --------------------------------------------------------------------------------------------
# The generated code holds only what it should

_IMPORTS_FROM = {
    "__future__": {"annotations"},
    "dataclasses": {"dataclass"},
    "typing": {"Annotated"},
    "onnxpipe": {"ColumnName", "ImageType", "KeyType", "VectorType"},
}
_IMPORTS: dict[str, str | None] = {"numpy": "np", "numpy.typing": "npt", "ml_dtypes": None}
_ML_DTYPES_NAMES = {t.ml_dtypes_name for t in DType if t.ml_dtypes_name is not None}
_TYPE_NAMES = {"str", "int", "float", "bool", "object", "list", "dict"}
_MARKERS = {"ColumnName", "ImageType", "KeyType", "VectorType"}
_NUMPY_TYPE = re.compile(r"[a-z][a-z0-9]*_?")


def check_generated_code(code: str) -> None:
    """Refuse (ModelError) generated source that is anything but imports and dataclasses of annotated fields.

    Allowed: ``from __future__ import annotations``, ``from dataclasses import dataclass``,
    ``from typing import Annotated``, ``import numpy as np``, ``import numpy.typing as npt``,
    ``import ml_dtypes``, ``from onnxpipe import`` the schema markers; classes decorated with
    exactly ``@dataclass``, without bases, whose bodies hold a docstring, ``pass`` and ``name:
    annotation`` lines. An annotation is built from builtin, numpy and ml_dtypes (the
    low-precision types onnxpipe knows) type names, subscripts, and in ``Annotated[...]``
    metadata calls of ColumnName / VectorType / KeyType / ImageType with literal arguments.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise ModelError(f"schema code: the generated source does not parse ({exc.msg}, line {exc.lineno})") from None
    for statement in tree.body:
        problem = _statement_problem(statement)
        if problem is not None:
            raise ModelError(f"schema code: refusing the generated source: line {statement.lineno} {problem}")


def _statement_problem(node: ast.stmt) -> str | None:
    if isinstance(node, ast.ImportFrom):
        allowed = _IMPORTS_FROM.get(node.module or "")
        if node.level or allowed is None or any(a.asname or a.name not in allowed for a in node.names):
            return "imports something other than the schema's names"
        return None
    if isinstance(node, ast.Import):
        if any(a.name not in _IMPORTS or _IMPORTS[a.name] != a.asname for a in node.names):
            return "imports something other than numpy or ml_dtypes"
        return None
    if not isinstance(node, ast.ClassDef):
        return f"is a {type(node).__name__}, not an import or a class"
    decorators = [d.id for d in node.decorator_list if isinstance(d, ast.Name)]
    if (
        decorators != ["dataclass"]
        or len(node.decorator_list) != 1
        or node.bases
        or node.keywords
        or getattr(node, "type_params", None)
        or not _CLASS_NAME.fullmatch(node.name)
    ):
        return "is not a plain @dataclass class"
    for i, item in enumerate(node.body):
        if isinstance(item, ast.Pass):
            continue
        if (
            i == 0
            and isinstance(item, ast.Expr)
            and isinstance(item.value, ast.Constant)
            and isinstance(item.value.value, str)
        ):
            continue
        if not (
            isinstance(item, ast.AnnAssign)
            and isinstance(item.target, ast.Name)
            and item.simple
            and item.value is None
            and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", item.target.id)
        ):
            return f"has a class body statement {type(item).__name__} that is not a field annotation"
        if not _annotation_ok(item.annotation, top=True):
            return f"has a field {item.target.id!r} whose annotation is not a plain schema type"
    return None


def _annotation_ok(node: ast.expr, *, top: bool = False) -> bool:
    if top and isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Annotated":
        parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        return len(parts) >= 2 and _annotation_ok(parts[0]) and all(_marker_ok(p) for p in parts[1:])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # X | None: an optional
        return _annotation_ok(node.left) and isinstance(node.right, ast.Constant) and node.right.value is None
    if isinstance(node, ast.Name):
        return node.id in _TYPE_NAMES
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        if node.value.id == "np":
            return bool(_NUMPY_TYPE.fullmatch(node.attr))
        if node.value.id == "ml_dtypes":
            return node.attr in _ML_DTYPES_NAMES
        return node.value.id == "npt" and node.attr == "NDArray"
    if isinstance(node, ast.Subscript):
        base_ok = (isinstance(node.value, ast.Name) and node.value.id in ("list", "dict")) or (
            isinstance(node.value, ast.Attribute) and _annotation_ok(node.value) and node.value.attr == "NDArray"
        )
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        return base_ok and 1 <= len(args) <= 2 and all(_annotation_ok(a) for a in args)
    return False


def _marker_ok(node: ast.expr) -> bool:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _MARKERS):
        return False
    if node.func.id == "KeyType":  # KeyType(n, [values], value_dtype="float64")
        keywords_ok = all(
            k.arg == "value_dtype" and isinstance(k.value, ast.Constant) and type(k.value.value) is str
            for k in node.keywords
        )
        return (
            keywords_ok and len(node.args) <= 2 and all(_literal_ok(a, values=i == 1) for i, a in enumerate(node.args))
        )
    return not node.keywords and all(_literal_ok(a) for a in node.args)


def _literal_ok(node: ast.expr, *, values: bool = False) -> bool:
    """An int, str or None literal; with ``values``, a list of str, int, float or bool literals."""
    if values:
        return isinstance(node, ast.List) and all(
            _literal_ok(e) or (isinstance(e, ast.Constant) and type(e.value) in (float, bool)) or _negative(e, float)
            for e in node.elts
        )
    if _negative(node, int):
        return True
    return isinstance(node, ast.Constant) and (type(node.value) in (int, str) or node.value is None)


def _negative(node: ast.expr, kind: type) -> bool:
    return (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and type(node.operand.value) in (int, kind)
    )
