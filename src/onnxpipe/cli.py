"""The ``onnxpipe`` command line: inspect, apply and convert models.

Exit codes: 0 success, 1 the output could not be written, 2 bad usage or a bad input (missing
file, malformed model, a column the model needs that the data lacks, a value that does not fit).
Errors are one line on stderr that starts with ``error:``; a traceback means a bug in onnxpipe.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import click
import numpy as np
import pyarrow as pa
from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from onnxpipe import __version__
from onnxpipe._cli_io import (
    INPUT_FORMATS,
    OUTPUT_FORMATS,
    TableSource,
    TableWriter,
    default_batch_rows,
    describe_layout,
    format_of,
    open_writer,
)
from onnxpipe.core import Transformer, TransformerChain
from onnxpipe.data._convert import arrow_schema, from_arrow, to_arrow
from onnxpipe.data._view import DataView
from onnxpipe.errors import ColumnNotFoundError, InvalidArgumentError, OnnxPipeError, SchemaError
from onnxpipe.onnx._inspect import (
    generate_schema_code,
    generate_schema_code_for_columns,
    inspect_model,
    render_model_info,
)
from onnxpipe.onnx._model import ModelInfo, TensorInfo
from onnxpipe.schema import Column, Schema, TensorType

__all__ = ["main"]

_ZIP_MAGIC = b"PK\x03\x04"


def _fail(message: str, code: int) -> NoReturn:
    # Rich picks colors only for a terminal, and honours NO_COLOR.
    Console(stderr=True, highlight=False).print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)
    raise SystemExit(code)


def _note(message: str) -> None:
    Console(stderr=True, highlight=False).print(Text(message), soft_wrap=True)


def _load(model: str) -> ModelInfo:
    try:
        return inspect_model(model)
    except OnnxPipeError as exc:
        _fail(str(exc), 2)
    except OSError as exc:  # unreadable file, e.g. permissions
        _fail(f"cannot read {model!r}: {exc.strerror or exc}", 2)


def _is_saved_model(path: Path) -> bool:
    """A saved pipeline (a zip) rather than a bare ONNX model: by its name, else by its first bytes."""
    if path.suffix.lower() == ".zip":
        return True
    if path.suffix.lower() == ".onnx":
        return False
    try:
        with path.open("rb") as f:
            return f.read(4) == _ZIP_MAGIC
    except OSError:
        return False  # the ONNX loader reports the missing or unreadable file


@dataclasses.dataclass(frozen=True)
class _Pipeline:
    """A model to predict with, whichever file it came from."""

    model: Transformer
    input_schema: Schema  # a saved pipeline's input schema; a bare model's inputs, one row each
    outputs: tuple[str, ...] | None  # a bare model's output columns (None: a saved pipeline)


def _onnx_input_type(info: TensorInfo | None) -> TensorType:
    """The column type a bare model's input is read as: its shape without the batch dimension."""
    assert info is not None  # the transformer checked its input names
    ct = info.column_type
    assert isinstance(ct, TensorType)
    shape = info.shape
    if info.dims is not None and shape and (shape[0] is None or shape[0] == 1):
        shape = shape[1:]  # [N, 4] reads a float32[4] column, [N] a scalar
    return TensorType(ct.dtype, _one_value_is_scalar(shape))


def _one_value_is_scalar(shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
    # [N, 1] (how ML.NET and onnxpipe export a scalar column) holds one value per row.
    return () if all(d == 1 for d in shape) else shape


def _open_pipeline(model: str) -> _Pipeline:
    """Load MODEL (exits with code 2 when it cannot be used)."""
    path = Path(model)
    try:
        if _is_saved_model(path):
            from onnxpipe.persistence import load_model

            transformer, schema = load_model(path)
            return _Pipeline(transformer, schema, None)
        from onnxpipe.transforms.onnx_model import OnnxTransformer

        onnx_model = OnnxTransformer(path)
        columns = [Column(n, _onnx_input_type(onnx_model.info.input(n))) for n in onnx_model.input_column_names]
        return _Pipeline(onnx_model, Schema(columns), tuple(onnx_model.output_column_names))
    except OnnxPipeError as exc:
        _fail(str(exc), 2)
    except OSError as exc:
        _fail(f"cannot read {model!r}: {exc.strerror or exc}", 2)


_EPILOG = """\b
Exit codes:
  0  success
  1  the output file could not be written
  2  bad usage or bad input: a missing or malformed file, a column the model
     needs that the data lacks, a value the model cannot take
Errors are one line on stderr starting with "error:".
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=_EPILOG)
@click.version_option(__version__, "-V", "--version", prog_name="onnxpipe")
def main() -> None:
    """Typed ML pipelines that speak ONNX: inspect models, generate their schema classes, score
    files with them, and convert saved pipelines to ONNX."""


# --------------------------------------------------------------------------------------------
# inspect / schema


@main.command("inspect")
@click.argument("model", metavar="MODEL")
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON instead of tables.")
def inspect_command(model: str, as_json: bool) -> None:
    """Show MODEL's inputs and outputs (names, element types, dimensions) and its properties.

    For a saved pipeline (.zip): its steps, and the columns it reads and writes.
    """
    if _is_saved_model(Path(model)):
        _inspect_saved(model, as_json)
        return
    info = _load(model)
    if as_json:
        # Plain stdout, not rich: JSON must stay byte-exact for pipes (no wrapping, no colors).
        click.echo(json.dumps(info.to_json(), indent=2, ensure_ascii=False))
        return
    Console(highlight=False).print(render_model_info(info))


def _result_columns(model: Transformer, input_schema: Schema) -> list[str]:
    return TransformerChain(list(model.steps)).result_columns(input_schema)


def _inspect_saved(model: str, as_json: bool) -> None:
    pipeline = _open_pipeline(model)
    try:
        output_schema = pipeline.model.output_schema(pipeline.input_schema)
    except OnnxPipeError as exc:
        _fail(f"saved model {model!r} does not apply to its own input schema: {exc}", 2)
    steps = pipeline.model.steps
    added = _result_columns(pipeline.model, pipeline.input_schema)
    if as_json:
        doc = {
            "path": model,
            "kind": "saved_pipeline",
            "steps": [{"index": i, "step_name": s.step_name, "class": type(s).__name__} for i, s in enumerate(steps)],
            "input_schema": pipeline.input_schema.to_json(),
            "output_schema": output_schema.to_json(),
            "result_columns": added,
        }
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    step_table = Table("#", "Step", "Class", title=Text(Path(model).name), box=box.SQUARE)
    for i, s in enumerate(steps):
        step_table.add_row(Text(str(i)), Text(s.step_name, overflow="fold"), Text(type(s).__name__))
    schema_table = Table("Column", "Input", "Output", box=box.SQUARE)
    for name in dict.fromkeys([*pipeline.input_schema.names, *output_schema.names]):
        given = pipeline.input_schema.get(name)
        made = output_schema.get(name)
        schema_table.add_row(
            Text(name, overflow="fold"),
            Text(str(given.type) if given is not None else ""),
            Text(str(made.type) if made is not None else "") + (Text(" *") if name in added else Text("")),
        )
    note = Text("* the pipeline's results (what `onnxpipe predict` writes by default)")
    Console(highlight=False).print(Group(step_table, schema_table, note))


@main.command("schema")
@click.argument("model", metavar="MODEL")
@click.option("--input-class", default="OnnxInput", show_default=True, help="Name of the inputs' class.")
@click.option("--output-class", default="OnnxOutput", show_default=True, help="Name of the outputs' class.")
@click.option(
    "-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path), help="Write the code to this file."
)
def schema_command(model: str, input_class: str, output_class: str, output: Path | None) -> None:
    """Print the Python dataclasses that declare MODEL's inputs and outputs.

    For a saved pipeline (.zip): its input columns, and the columns it gives back (those
    `onnxpipe predict` writes), ready for ctx.model.create_prediction_engine.
    """
    try:
        if _is_saved_model(Path(model)):
            pipeline = _open_pipeline(model)
            results = pipeline.model.output_schema(pipeline.input_schema).select(
                _result_columns(pipeline.model, pipeline.input_schema)
            )
            code = generate_schema_code_for_columns(
                pipeline.input_schema,
                results,
                source=Path(model).name,
                input_class=input_class,
                output_class=output_class,
            )
        else:
            code = generate_schema_code(_load(model), input_class=input_class, output_class=output_class)
    except OnnxPipeError as exc:
        _fail(str(exc), 2)
    if output is None:
        click.echo(code, nl=False)
        return
    try:
        output.write_text(code, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {str(output)!r}: {exc.strerror or exc}", 1)
    _note(f"wrote {output}")


# --------------------------------------------------------------------------------------------
# convert


@main.command("convert")
@click.argument("model", metavar="MODEL")
@click.option(
    "-o",
    "--output",
    "output",
    metavar="OUTPUT",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The ONNX file to write (replaced if it exists).",
)
@click.option("--opset", type=int, help="ONNX opset (default: the lowest every step needs, at least 13).")
@click.option("--columns", metavar="A,B,...", help="Output columns of the ONNX model (comma-separated).")
@click.option("--keep-input", is_flag=True, help="Also output the input columns (which makes them all inputs).")
def convert_command(model: str, output: Path, opset: int | None, columns: str | None, keep_input: bool) -> None:
    """Convert a saved pipeline (MODEL.zip) to one ONNX model.

    The ONNX model's outputs are, by default, the pipeline's results (the columns `predict`
    writes); its inputs are the columns those need, with a symbolic batch dimension first.
    A step that cannot be exported fails the conversion with a message naming it.
    """
    wanted = _column_list(columns)
    if wanted is not None and keep_input:
        raise click.UsageError("--columns and --keep-input cannot be combined: --columns names every output column")
    if not _is_saved_model(Path(model)):
        _fail(f"{model!r} is not a saved pipeline (.zip); `onnxpipe convert` turns saved pipelines into ONNX", 2)
    pipeline = _open_pipeline(model)
    from onnxpipe.onnx._export import convert_to_onnx

    try:
        output_schema = pipeline.model.output_schema(pipeline.input_schema)
        names = _output_columns(pipeline, pipeline.input_schema, output_schema, wanted, keep_input, [])
        proto = convert_to_onnx(pipeline.model, pipeline.input_schema, opset=opset, output_columns=names)
    except OnnxPipeError as exc:
        _fail(str(exc), 2)
    try:
        output.write_bytes(proto.SerializeToString())
    except OSError as exc:
        _fail(f"cannot write {str(output)!r}: {exc.strerror or exc}", 1)
    version = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    _note(f"wrote {output} (opset {version}; inputs {[i.name for i in proto.graph.input]})")


# --------------------------------------------------------------------------------------------
# predict


def _separator(text: str | None) -> str | None:
    if text is None:
        return None
    sep = {"\\t": "\t", "tab": "\t"}.get(text, text)
    if len(sep) != 1:
        raise click.BadParameter(f"must be one character (or 'tab'), got {text!r}", param_hint="--separator")
    return sep


def _column_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("give at least one column name, e.g. Score,PredictedLabel", param_hint="--columns")
    return names


def _accepts(model: Transformer, schema: Schema) -> bool:
    """Whether ``model`` accepts data of ``schema``."""
    try:
        model.output_schema(schema)
    except SchemaError:
        return False
    return True


def _table_view(
    pipeline: _Pipeline,
    source: TableSource,
    wanted: Sequence[str] | None,
    keep_input: bool,
    batch_size: int | None,
) -> DataView:
    """The columns of the file that the model reads (typed as it reads them), plus the other
    file columns that the output keeps."""
    known = pipeline.input_schema.columns
    present = [c for c in known if source.layout(c) is not None]
    missing = [c for c in known if source.layout(c) is None]
    extras = [n for n in source.extra_columns(known) if keep_input or (wanted is not None and n in wanted)]
    schema = Schema(present)
    if missing and not _accepts(pipeline.model, schema):
        full = Schema(known)
        for c in missing:
            if not _accepts(pipeline.model, full.without(c.name)):  # the model needs this one
                raise ColumnNotFoundError(
                    f"{source.where} has no column {c.name!r} ({c.type}) that the model reads"
                    f"{describe_layout(c, source.format)}; the file's columns: {source.column_names()}"
                )
    try:
        pipeline.model.output_schema(schema)
    except SchemaError as exc:
        raise type(exc)(f"{source.where}: {exc}") from None
    rows = batch_size or default_batch_rows(schema)
    return source.view(present, extras, rows)


def _write(view: DataView, names: Sequence[str], output: Path, fmt: str, progress: bool | None) -> int:
    """Stream ``view``'s columns ``names`` into ``output``; returns the number of rows.

    The rows go to a temporary file next to ``output`` that replaces it at the end, so a failed
    run leaves no half-written output (and an existing file as it was).
    """
    out_schema = view.schema.select(names)
    if not output.parent.is_dir():
        _fail(f"cannot write {str(output)!r}: folder {str(output.parent)!r} does not exist", 1)
    partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
    writer: TableWriter | None = None
    try:
        try:
            writer = open_writer(partial, fmt, out_schema)
        except OSError as exc:
            _fail(f"cannot write {str(output)!r}: {exc.strerror or exc}", 1)
        rows = 0
        for batch in view.with_progress("predicting", enabled=progress).batches():
            try:
                writer.write(batch.select(list(names)))
            except OSError as exc:
                _fail(f"cannot write {str(output)!r}: {exc.strerror or exc}", 1)
            rows += batch.num_rows
        try:
            writer.close()
            writer = None
            os.replace(partial, output)
        except OSError as exc:
            _fail(f"cannot write {str(output)!r}: {exc.strerror or exc}", 1)
        return rows
    finally:
        if writer is not None:
            with contextlib.suppress(Exception):  # already failing: the first error is the one to report
                writer.close()
        partial.unlink(missing_ok=True)


_PREDICT_HELP = """Score INPUT with MODEL and write the result to OUTPUT.

\b
MODEL is a saved pipeline (.zip) or a bare ONNX model (.onnx).
INPUT is a CSV/TSV, Parquet or JSON lines file (format from its name, or
--format-in), or a folder of images when the pipeline starts by loading images
(then every image under it is scored, and the image path column is kept).

\b
Columns are matched by name: a saved pipeline reads the columns of its saved
input schema; a bare ONNX model reads one column per input tensor, named as the
tensor, holding one row of it (the batch dimension left out: an input
float32[N,4] reads 4 values per row).
A vector (k values, row-major) is, in CSV/TSV, the k columns NAME.0 ... NAME.k-1;
in Parquet and JSON lines a list column NAME (a flat JSON array) or those k
columns. Missing float values (empty, NA, NaN, ...) are read as NaN.

\b
OUTPUT gets, by default, the model's results: a bare model's outputs; for a
saved pipeline, the columns its steps write that no later step reads (a
trainer's Score and PredictedLabel, not the Features it reads; `onnxpipe
inspect` marks them). --columns picks the columns (input columns too);
--keep-input writes every input column as well. Vectors are
written in the same layout as they are read; in CSV/TSV, tensors of unknown
shape, sequences and maps are JSON text in one cell. In JSON lines, NaN and
infinities (which JSON cannot hold) are written as null. Parquet keeps the
exact column types. The output is written when the run succeeds; a failed run
leaves no partial file.

\b
Memory stays bounded: the input is read, scored and written in batches.
A progress bar shows on stderr when stderr is a terminal.
"""


@main.command("predict", help=_PREDICT_HELP, epilog=_EPILOG, no_args_is_help=True)
@click.argument("model", metavar="MODEL")
@click.option(
    "-i",
    "--input",
    "input_path",
    metavar="INPUT",
    required=True,
    type=click.Path(path_type=Path),
    help="Data to score.",
)
@click.option(
    "-o",
    "--output",
    "output",
    metavar="OUTPUT",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Result file (replaced if it exists).",
)
@click.option(
    "--format-in",
    type=click.Choice(["auto", *INPUT_FORMATS]),
    default="auto",
    show_default=True,
    help="Input format (auto: from the name: .csv, .tsv/.tab/.txt, .parquet/.pq, .jsonl/.ndjson/.json).",
)
@click.option(
    "--format-out",
    type=click.Choice(["auto", *OUTPUT_FORMATS]),
    default="auto",
    show_default=True,
    help="Output format (auto: from the name, as --format-in).",
)
@click.option("--columns", metavar="A,B,...", help="Output columns, in this order (comma-separated).")
@click.option("--keep-input", is_flag=True, help="Also write the input columns.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="Rows per batch (default: ~32 MiB of model input, at most 8192).",
)
@click.option("--separator", metavar="CHAR", help="Field separator of a CSV/TSV input (default: ',' / tab; 'tab').")
@click.option("--no-header", is_flag=True, help="The CSV/TSV input has no header: columns are read in schema order.")
@click.option(
    "--progress/--no-progress", default=None, help="Show a progress bar on stderr (default: when it is a terminal)."
)
def predict_command(
    model: str,
    input_path: Path,
    output: Path,
    format_in: str,
    format_out: str,
    columns: str | None,
    keep_input: bool,
    batch_size: int | None,
    separator: str | None,
    no_header: bool,
    progress: bool | None,
) -> None:
    wanted = _column_list(columns)
    sep = _separator(separator)
    if wanted is not None and keep_input:
        raise click.UsageError("--columns and --keep-input cannot be combined: --columns names every output column")
    try:
        fmt_out = format_of(output, format_out, "--format-out")
    except InvalidArgumentError as exc:
        _fail(str(exc), 2)
    pipeline = _open_pipeline(model)
    try:
        if input_path.is_dir():
            view, kept = _image_folder_view(pipeline, input_path, wanted, keep_input, batch_size)
            unread = ["Label"]
        else:
            fmt_in = format_of(input_path, format_in, "--format-in")
            source = TableSource(input_path, fmt_in, separator=sep, has_header=not no_header)
            view, kept = _table_view(pipeline, source, wanted, keep_input, batch_size), []
            unread = source.extra_columns(pipeline.input_schema.columns)
        scored = pipeline.model.transform(view)
        if pipeline.outputs is not None:
            scored = _without_batch_dimension(scored, pipeline.outputs)
        names = _output_columns(pipeline, view.schema, scored.schema, wanted, keep_input, kept, unread)
        rows = _write(scored, names, output, fmt_out, progress)
    except OnnxPipeError as exc:
        _fail(str(exc), 2)
    except OSError as exc:  # reading the input
        _fail(f"cannot read {str(input_path)!r}: {exc.strerror or exc}", 2)
    _note(f"wrote {rows} rows to {output}")


def _output_columns(
    pipeline: _Pipeline,
    input_schema: Schema,
    output_schema: Schema,
    wanted: Sequence[str] | None,
    keep_input: bool,
    kept: Sequence[str],
    unread: Sequence[str] = (),
) -> list[str]:
    """The columns to write. ``kept``: written in every case; ``unread``: input columns that
    --columns could have named too (for the error message)."""
    if wanted is not None:
        absent = [n for n in wanted if n not in output_schema]
        if absent:
            available = [*output_schema.names, *(n for n in unread if n not in output_schema)]
            raise ColumnNotFoundError(
                f"--columns names {absent[0]!r}, which neither the input nor the model has; the columns: {available}"
            )
        return list(wanted)
    if keep_input:
        return output_schema.names
    added = list(pipeline.outputs) if pipeline.outputs is not None else _result_columns(pipeline.model, input_schema)
    if not added:
        raise SchemaError("the model writes no new column; name the columns to write with --columns")
    return list(dict.fromkeys([*kept, *added]))


def _without_batch_dimension(view: DataView, names: Sequence[str]) -> DataView:
    """A bare model's outputs without their leading 1 (the batch dimension of one row), as its
    inputs are read: ``[N]`` and ``[N,1]`` give a scalar column, ``[N,3]`` a float32[3] one."""
    columns = []
    for c in view.schema.columns:
        ct = c.type
        if c.name in names and isinstance(ct, TensorType) and ct.shape[:1] == (1,):
            shape = _one_value_is_scalar(ct.shape[1:])
            c = Column(c.name, TensorType(ct.dtype, shape, ct.key_count), c.slot_names if shape else None)
        columns.append(c)
    schema = Schema(columns)
    changed = [c for c in columns if c.type != view.schema[c.name].type]
    if not changed:
        return view
    target = arrow_schema(schema)
    before = view.schema

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in view.batches():
            arrays = [batch.column(c.name) for c in columns]
            for c in changed:
                values = from_arrow(batch.column(c.name), before[c.name].type)
                ct = c.type
                assert isinstance(ct, TensorType)
                if isinstance(values, np.ndarray):
                    values = values.reshape((len(values), *ct.fixed_shape))
                else:  # unknown dimensions: the row's own shape without its leading 1
                    values = [np.asarray(v).reshape(np.shape(v)[1:]) for v in values]
                arrays[schema.names.index(c.name)] = to_arrow(values, c.type, c.name)
            yield pa.RecordBatch.from_arrays(arrays, schema=target)

    return DataView(schema, batches, view.row_count)


_IMAGE_BATCH_ROWS = 64


def _image_folder_view(
    pipeline: _Pipeline, folder: Path, wanted: Sequence[str] | None, keep_input: bool, batch_size: int | None
) -> tuple[DataView, list[str]]:
    """The image files under ``folder`` (absolute paths, sorted), in the column the pipeline's
    first step reads paths from, and ``Label`` (the folder of each file) when the pipeline reads
    it or the output keeps it. Returns the view and the columns every output keeps (the paths)."""
    from onnxpipe.data._images import load_from_image_folder
    from onnxpipe.transforms.images import ImageLoadingTransformer, RawImageBytesLoadingTransformer

    first = pipeline.model.steps[0] if pipeline.model.steps else None
    if pipeline.outputs is not None or not isinstance(first, ImageLoadingTransformer | RawImageBytesLoadingTransformer):
        raise InvalidArgumentError(
            f"input {str(folder)!r} is a folder: a folder of images can be scored only by a saved pipeline whose "
            "first step loads images (load_images or load_raw_image_bytes); give a CSV/TSV, Parquet or JSON lines "
            "file instead"
        )
    path_column = first.input_column_name
    files = load_from_image_folder(folder)
    label = "Label"
    with_label = path_column != label and (
        label in pipeline.input_schema or keep_input or (wanted is not None and label in wanted)
    )
    names = ["ImagePath", label] if with_label else ["ImagePath"]
    schema = Schema(
        [Column(path_column, files.schema["ImagePath"].type), *([files.schema[label]] if with_label else [])]
    )
    target = arrow_schema(schema)
    rows = batch_size or _IMAGE_BATCH_ROWS

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in files.batches():
            renamed = pa.RecordBatch.from_arrays([batch.column(n) for n in names], schema=target)
            for start in range(0, renamed.num_rows, rows):
                yield renamed.slice(start, rows)

    return DataView(schema, batches, files.row_count), [path_column]
