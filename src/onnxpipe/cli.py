"""The ``onnxpipe`` command line: inspect, apply and convert models.

Exit codes: 0 success; 1 the output could not be written (or is refused: a symbolic link);
2 bad usage or a bad input (missing file, malformed model, a column the model needs that the
data lacks, a value that does not fit, a limit exceeded); 130 interrupted by SIGINT (Ctrl-C),
143 by SIGTERM. Every failure is one line on stderr that starts with ``error:``, whatever raised
it: an unexpected exception is reported as an internal error (a bug in onnxpipe), with its
traceback only under ``--debug`` or ``ONNXPIPE_DEBUG=1``. Python warnings are one ``warning:``
line each. Every name a model or data file holds is printed through
:func:`onnxpipe._display.shown` and as rich ``Text`` (never markup).

Outputs (``predict``, ``convert``, ``schema -o``) are written to a temporary file made
exclusively in the output's folder and renamed over it at the end; a failed or interrupted run
removes it (see :mod:`onnxpipe._files`). An output that is a symbolic link is refused (exit 1);
one that is the input or the model (the same file, by path or inode) is refused before anything
is read (exit 2).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import stat
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click
import numpy as np
import pyarrow as pa

from onnxpipe import __version__
from onnxpipe._cli_io import (
    INPUT_FORMATS,
    OUTPUT_FORMATS,
    TableSource,
    default_batch_rows,
    describe_layout,
    format_of,
    open_writer,
)
from onnxpipe._display import quoted, shown
from onnxpipe._files import atomic_output, remove_partial_files
from onnxpipe._limits import DEFAULT_MAX_BYTES
from onnxpipe.core import Transformer, TransformerChain
from onnxpipe.data._convert import arrow_schema, from_arrow, to_arrow
from onnxpipe.data._view import DataView
from onnxpipe.errors import ColumnNotFoundError, InvalidArgumentError, OnnxPipeError, SchemaError
from onnxpipe.runtime._inspect import (
    generate_schema_code,
    generate_schema_code_for_columns,
    inspect_model,
    render_model_info,
)
from onnxpipe.runtime._model import ModelInfo, TensorInfo
from onnxpipe.runtime._session import allow_runs, terminate_runs
from onnxpipe.schema import Column, Schema, TensorType

if TYPE_CHECKING:  # rich is imported where something is printed: --help does not need it
    from rich.text import Text

__all__ = ["EXIT_BAD_INPUT", "EXIT_OUTPUT", "EXIT_SIGINT", "EXIT_SIGTERM", "main"]

EXIT_OUTPUT = 1
EXIT_BAD_INPUT = 2
EXIT_SIGINT = 128 + signal.SIGINT  # 130, as shells report a command ended by Ctrl-C
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143

_ZIP_MAGIC = b"PK\x03\x04"
_MESSAGE_CHARS = 4000  # of one error or warning line; longer ones are cut, saying how much was left out
_DEBUG_VARIABLE = "ONNXPIPE_DEBUG"


class _CommandError(Exception):
    """A failure the command has worded: printed as one ``error:`` line, exit ``code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class _Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException: no ``except Exception`` stops it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@dataclasses.dataclass
class _Run:
    debug: bool = False
    signal: int | None = None  # SIGINT or SIGTERM, as soon as it arrives (seen by the watching thread)
    reporting: bool = False  # the failure is being reported: a signal handler must not raise now
    quiet: bool = False  # --quiet: no notes, no progress bars


_run = _Run()


def _fail(message: str, code: int) -> NoReturn:
    raise _CommandError(message, code)


def _line(label: str, style: str, message: str) -> None:
    from rich.console import Console
    from rich.text import Text

    # Rich picks colors only for a terminal, and honours NO_COLOR. The message is Text: a name
    # holding "[bold]" is printed as it is, and shown() escapes control characters.
    Console(stderr=True, highlight=False).print(
        Text.assemble((label, style), " ", shown(message, _MESSAGE_CHARS)), soft_wrap=True
    )


def _note(message: str) -> None:
    if _run.quiet:
        return
    from rich.console import Console
    from rich.text import Text

    Console(stderr=True, highlight=False).print(Text(shown(message, _MESSAGE_CHARS)), soft_wrap=True)


def _quoted(path: str | Path) -> str:
    return quoted(os.fspath(path))


def _os_error(exc: OSError) -> str:
    where = f"{_quoted(exc.filename)}: " if exc.filename is not None else ""
    return f"{where}{exc.strerror or exc}"


def _report(exc: BaseException) -> int:
    """Print ``exc`` as one ``error:`` line (and its traceback under --debug); the exit code."""
    if isinstance(exc, _CommandError):
        message, code = exc.message, exc.code
    elif isinstance(exc, _Interrupted | KeyboardInterrupt | click.Abort):
        signum = exc.signum if isinstance(exc, _Interrupted) else signal.SIGINT
        name = signal.Signals(signum).name
        message, code = f"interrupted ({name}); no output was written", 128 + signum
    elif isinstance(exc, click.ClickException):
        message, code = exc.format_message(), exc.exit_code
        ctx = getattr(exc, "ctx", None)
        if isinstance(exc, click.UsageError) and ctx is not None:
            message += f" (see '{ctx.command_path} --help')"
    elif isinstance(exc, OnnxPipeError):
        message, code = str(exc), EXIT_BAD_INPUT
    elif isinstance(exc, MemoryError):
        message, code = (
            "out of memory: the model or the data needs more memory than this machine gives; "
            "lower --batch-size, or --max-bytes to refuse such files early",
            EXIT_BAD_INPUT,
        )
    elif isinstance(exc, RecursionError):
        message, code = "the input is nested too deeply to read", EXIT_BAD_INPUT
    elif isinstance(exc, pa.ArrowException):
        message, code = f"cannot read the data: {exc}", EXIT_BAD_INPUT
    elif isinstance(exc, OSError):
        message, code = _os_error(exc), EXIT_BAD_INPUT
    elif isinstance(exc, Exception):
        message = (
            f"internal error: {type(exc).__name__}: {exc}; this is a bug in onnxpipe: run again with --debug "
            f"(or {_DEBUG_VARIABLE}=1) to see where, and report it"
        )
        code = EXIT_BAD_INPUT
    else:
        raise exc  # SystemExit, GeneratorExit: not failures to word
    if _run.debug and not isinstance(exc, click.ClickException | _Interrupted | KeyboardInterrupt):
        traceback.print_exception(exc, file=sys.stderr)
    _line("error:", "bold red", message)
    return code


def _exit_now(signum: int, frame: FrameType | None) -> None:
    """A second SIGINT/SIGTERM while the first is being handled: remove the partial output, end."""
    remove_partial_files()
    with contextlib.suppress(OSError):
        os.write(2, f"error: interrupted ({signal.Signals(signum).name})\n".encode())
    os._exit(128 + signum)


def _stop(signum: int, frame: FrameType | None) -> None:
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _exit_now)
    _run.signal = _run.signal or signum
    if not _run.reporting:
        raise _Interrupted(signum)


@contextlib.contextmanager
def _signals() -> Iterator[None]:
    """SIGINT and SIGTERM stop the command with an exception, so that the partial output is
    removed on the way out (the exit code is 128 + the signal's number)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    # Python runs signal handlers only between bytecodes: while the main thread is inside one long
    # ONNX Runtime call (a model looping as often as its input says), _stop waits. The C-level
    # handler writes the signal's number to the wakeup socket at once; a thread reading it stops
    # ONNX Runtime's calls, which then return, and _stop runs.
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def watch() -> None:
        with contextlib.suppress(OSError):
            while data := reader.recv(1):
                if data[0] in (signal.SIGINT, signal.SIGTERM):
                    _run.signal = _run.signal or data[0]
                    terminate_runs()

    threading.Thread(target=watch, name="onnxpipe-signals", daemon=True).start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        with contextlib.suppress(OSError):
            reader.shutdown(socket.SHUT_RDWR)  # wakes the watching thread, which then ends
        writer.close()
        reader.close()
        allow_runs()  # the command is over; a caller running it in-process scores again
        for s, handler in previous.items():
            signal.signal(s, handler)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    where = f" ({category.__name__} at {filename}:{lineno})" if _run.debug else ""
    _line("warning:", "yellow", f"{message}{where}")


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    with warnings.catch_warnings():  # restores showwarning and the filters
        warnings.showwarning = _show_warning
        # Pillow's decompression-bomb warning: the image is refused right after, with an error.
        warnings.filterwarnings("ignore", message=r"Image size \(\d+ pixels\) exceeds limit")
        yield


class _Cli(click.Group):
    """The command group, whose ``main`` turns every failure into one ``error:`` line."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> NoReturn:
        _run.debug = os.environ.get(_DEBUG_VARIABLE, "") not in ("", "0")
        _run.signal, _run.reporting, _run.quiet = None, False, False
        code = 0
        with _signals(), _warnings_as_lines():
            try:
                rv = super().main(args, prog_name or "onnxpipe", complete_var, standalone_mode=False, **extra)
                code = rv if isinstance(rv, int) else 0  # --help, --version: click's exit code
            except SystemExit:
                raise
            except BaseException as exc:
                _run.reporting = True
                # A signal stops ONNX Runtime's call, whose error may come out before the signal's
                # own handler has run: report the interruption, not that error.
                code = _report(_Interrupted(_run.signal) if _run.signal is not None else exc)
        sys.exit(code)


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        _run.debug = True


def _debug_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_debug,
        help=f"Show the traceback of a failure (also {_DEBUG_VARIABLE}=1).",
    )(f)


def _max_bytes_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--max-bytes",
        type=click.IntRange(min=1),
        default=DEFAULT_MAX_BYTES,
        show_default="4 GiB",
        metavar="N",
        help=(
            "The most bytes one file may make onnxpipe hold: a model file (and a saved model's contents once "
            "uncompressed), one Parquet row group; one input row (CSV/TSV or JSON line) is held to 64 MiB, "
            "or N if smaller."
        ),
    )(f)


def _check_model_file(model: str, max_bytes: int) -> None:
    """MODEL is a regular file of at most ``max_bytes`` (a missing one is left to the loaders,
    which say so); checked before a byte of it is read."""
    try:
        st = os.stat(model)
    except FileNotFoundError:
        return
    except OSError as exc:
        _fail(f"cannot read {_quoted(model)}: {exc.strerror or exc}", EXIT_BAD_INPUT)
    if stat.S_ISDIR(st.st_mode):
        _fail(f"model {_quoted(model)} is a folder; give the model file (.onnx or .zip)", EXIT_BAD_INPUT)
    if not stat.S_ISREG(st.st_mode):
        _fail(f"model {_quoted(model)} is not a regular file (a pipe or a device); give the model file", EXIT_BAD_INPUT)
    if st.st_size > max_bytes:
        _fail(
            f"model file {_quoted(model)} has {st.st_size:,} bytes, more than --max-bytes ({max_bytes:,}); "
            "raise --max-bytes if the model is that large",
            EXIT_BAD_INPUT,
        )


def _load(model: str, max_bytes: int) -> ModelInfo:
    _check_model_file(model, max_bytes)
    try:
        return inspect_model(model)
    except OnnxPipeError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except OSError as exc:  # unreadable file, e.g. permissions
        _fail(f"cannot read {_quoted(model)}: {exc.strerror or exc}", EXIT_BAD_INPUT)


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


def _open_pipeline(model: str, max_bytes: int) -> _Pipeline:
    """Load MODEL (exits with code 2 when it cannot be used)."""
    _check_model_file(model, max_bytes)
    path = Path(model)
    try:
        if _is_saved_model(path):
            from onnxpipe.persistence import load_model

            transformer, schema = load_model(path, max_bytes=max_bytes)
            return _Pipeline(transformer, schema, None)
        from onnxpipe.transforms.onnx_model import OnnxTransformer

        onnx_model = OnnxTransformer(path, max_bytes=max_bytes)
        columns = [Column(n, _onnx_input_type(onnx_model.info.input(n))) for n in onnx_model.input_column_names]
        for column in columns:  # a declared [N, 2**40] would have the reader plan 2**40 values a row
            ct = column.type
            assert isinstance(ct, TensorType)
            row_bytes = (ct.size or 1) * (ct.dtype.numpy.itemsize or 1)
            if row_bytes > max_bytes:
                _fail(
                    f"input {_quoted(column.name)} of {_quoted(model)} declares {ct.size:,} values per row "
                    f"({row_bytes:,} bytes), more than --max-bytes ({max_bytes:,})",
                    EXIT_BAD_INPUT,
                )
        return _Pipeline(onnx_model, Schema(columns), tuple(onnx_model.output_column_names))
    except OnnxPipeError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except OSError as exc:
        _fail(f"cannot read {_quoted(model)}: {exc.strerror or exc}", EXIT_BAD_INPUT)


def _same_file(a: Path, b: Path) -> bool:
    """Whether paths ``a`` and ``b`` name one file (after resolving links, or by inode)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _check_output(output: Path, sources: Sequence[tuple[str, Path]]) -> None:
    """OUTPUT may be written: not a symbolic link, in a folder that exists, not one of the
    ``sources`` (the model, the input). Checked before anything is read."""
    if output.is_symlink():
        _fail(
            f"cannot write {_quoted(output)}: it is a symbolic link, and onnxpipe does not write through links; "
            "give the path it points to, or remove the link",
            EXIT_OUTPUT,
        )
    for what, source in sources:
        if _same_file(output, source):
            _fail(
                f"the output {_quoted(output)} is the {what} {_quoted(source)}; writing it would destroy the {what}: "
                "give another output file",
                EXIT_BAD_INPUT,
            )
    if not output.parent.is_dir():
        _fail(f"cannot write {_quoted(output)}: folder {_quoted(output.parent)} does not exist", EXIT_OUTPUT)


def _write_bytes(output: Path, data: bytes) -> None:
    try:
        with atomic_output(output, "the output") as f:
            f.write(data)
    except OnnxPipeError as exc:  # a symbolic link made since the check
        _fail(str(exc), EXIT_OUTPUT)
    except OSError as exc:
        _fail(f"cannot write {_quoted(output)}: {exc.strerror or exc}", EXIT_OUTPUT)


_EPILOG = """\b
Exit codes:
  0    success
  1    the output file could not be written (or is a symbolic link)
  2    bad usage or bad input: a missing or malformed file, a column the model
       needs that the data lacks, a value the model cannot take, a limit exceeded
  130  interrupted by SIGINT (Ctrl-C)
  143  terminated by SIGTERM
Errors are one line on stderr starting with "error:" (--debug adds the
traceback); an interrupted or failed run leaves no partial output.
"""


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        _run.quiet = True


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]}, epilog=_EPILOG)
@click.version_option(__version__, "-V", "--version", prog_name="onnxpipe")
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_quiet,
    help='No notes ("wrote N rows...") and no progress bars; warnings and errors still show.',
)
@_debug_option
def main() -> None:
    """Typed ML pipelines that speak ONNX: inspect models, generate their schema classes, score
    files with them (in one process or on Dask, Ray or Spark), convert saved pipelines to ONNX,
    and serve them over the Open Inference Protocol."""


# --------------------------------------------------------------------------------------------
# inspect / schema


def _json_text(doc: Any) -> str:
    """``doc`` as indented JSON whose every character prints: non-ASCII text stays readable, and
    anything shown() would escape (controls, bidirectional overrides) is a \\u escape, which JSON
    readers turn back into the same text."""
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    if text.isprintable() or all(ch.isprintable() or ch == "\n" for ch in text):
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch == "\n":
            out.append(ch)
        elif ord(ch) > 0xFFFF:
            code = ord(ch) - 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return "".join(out)


@main.command("inspect")
@click.argument("model", metavar="MODEL")
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON instead of tables.")
@click.option(
    "--graph",
    "graph_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the graph (inputs, nodes, outputs, shapes on edges) into this .svg, .png, .pdf or .dot file "
    "(needs the graph extra and Graphviz).",
)
@_max_bytes_option
@_debug_option
def inspect_command(model: str, as_json: bool, graph_file: Path | None, max_bytes: int) -> None:
    """Show MODEL's inputs and outputs (names, element types, dimensions) and its properties.

    For a saved pipeline (.zip): its steps, and the columns it reads and writes.
    """
    _check_model_file(model, max_bytes)
    if graph_file is not None:
        if _is_saved_model(Path(model)):
            _fail("--graph draws ONNX models; export the pipeline first: onnxpipe convert MODEL.zip -o model.onnx", 2)
        from onnxpipe.runtime import draw_model

        try:
            draw_model(model, graph_file)
        except OnnxPipeError as exc:
            _fail(str(exc), EXIT_BAD_INPUT)
        _note(f"drew the graph into {graph_file}")
    if _is_saved_model(Path(model)):
        _inspect_saved(model, as_json, max_bytes)
        return
    info = _load(model, max_bytes)
    if as_json:
        # Plain stdout, not rich: JSON must stay byte-exact for pipes (no wrapping, no colors).
        click.echo(_json_text(info.to_json()))
        return
    from rich.console import Console

    Console(highlight=False).print(render_model_info(info))


def _result_columns(model: Transformer, input_schema: Schema) -> list[str]:
    return TransformerChain(list(model.steps)).result_columns(input_schema)


def _shown_text(text: object) -> Text:
    """A name from a file, escaped, as rich Text (never markup), folded when too long for a cell."""
    from rich.text import Text

    return Text(shown(text), overflow="fold")


def _inspect_saved(model: str, as_json: bool, max_bytes: int) -> None:
    pipeline = _open_pipeline(model, max_bytes)
    try:
        output_schema = pipeline.model.output_schema(pipeline.input_schema)
    except OnnxPipeError as exc:
        _fail(f"saved model {_quoted(model)} does not apply to its own input schema: {exc}", EXIT_BAD_INPUT)
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
        click.echo(_json_text(doc))
        return
    from rich import box
    from rich.console import Console, Group
    from rich.table import Table
    from rich.text import Text

    step_table = Table("#", "Step", "Class", title=_shown_text(Path(model).name), box=box.SQUARE)
    for i, s in enumerate(steps):
        step_table.add_row(Text(str(i)), _shown_text(s.step_name), _shown_text(type(s).__name__))
    schema_table = Table("Column", "Input", "Output", box=box.SQUARE)
    for name in dict.fromkeys([*pipeline.input_schema.names, *output_schema.names]):
        given = pipeline.input_schema.get(name)
        made = output_schema.get(name)
        schema_table.add_row(
            _shown_text(name),
            _shown_text(given.type if given is not None else ""),
            _shown_text(made.type if made is not None else "") + (Text(" *") if name in added else Text("")),
        )
    note = Text("* the pipeline's results (what `onnxpipe predict` writes by default)")
    Console(highlight=False).print(Group(step_table, schema_table, note))


@main.command("schema")
@click.argument("model", metavar="MODEL")
@click.option("--input-class", default="OnnxInput", show_default=True, help="Name of the inputs' class.")
@click.option("--output-class", default="OnnxOutput", show_default=True, help="Name of the outputs' class.")
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the code to this file (replaced if it exists; not through a symbolic link).",
)
@_max_bytes_option
@_debug_option
def schema_command(model: str, input_class: str, output_class: str, output: Path | None, max_bytes: int) -> None:
    """Print the Python dataclasses that declare MODEL's inputs and outputs.

    For a saved pipeline (.zip): its input columns, and the columns it gives back (those
    `onnxpipe predict` writes), ready for ctx.model.create_prediction_engine.
    """
    if output is not None:
        _check_output(output, [("model", Path(model))])
    _check_model_file(model, max_bytes)
    try:
        if _is_saved_model(Path(model)):
            pipeline = _open_pipeline(model, max_bytes)
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
            code = generate_schema_code(_load(model, max_bytes), input_class=input_class, output_class=output_class)
    except OnnxPipeError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    if output is None:
        click.echo(code, nl=False)
        return
    _write_bytes(output, code.encode("utf-8"))
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
    help="The ONNX file to write (replaced if it exists; not through a symbolic link).",
)
@click.option("--opset", type=int, help="ONNX opset (default: the lowest every step needs, at least 13).")
@click.option("--columns", metavar="A,B,...", help="Output columns of the ONNX model (comma-separated).")
@click.option("--keep-input", is_flag=True, help="Also output the input columns (which makes them all inputs).")
@_max_bytes_option
@_debug_option
def convert_command(
    model: str, output: Path, opset: int | None, columns: str | None, keep_input: bool, max_bytes: int
) -> None:
    """Convert a saved pipeline (MODEL.zip) to one ONNX model.

    The ONNX model's outputs are, by default, the pipeline's results (the columns `predict`
    writes); its inputs are the columns those need, with a symbolic batch dimension first.
    A step that cannot be exported fails the conversion with a message naming it.
    """
    wanted = _column_list(columns)
    if wanted is not None and keep_input:
        raise click.UsageError("--columns and --keep-input cannot be combined: --columns names every output column")
    _check_output(output, [("model", Path(model))])
    _check_model_file(model, max_bytes)
    if not _is_saved_model(Path(model)):
        _fail(
            f"{_quoted(model)} is not a saved pipeline (.zip); `onnxpipe convert` turns saved pipelines into ONNX",
            EXIT_BAD_INPUT,
        )
    pipeline = _open_pipeline(model, max_bytes)
    from onnxpipe.export import convert_to_onnx

    try:
        output_schema = pipeline.model.output_schema(pipeline.input_schema)
        names = _output_columns(pipeline, pipeline.input_schema, output_schema, wanted, keep_input, [])
        proto = convert_to_onnx(pipeline.model, pipeline.input_schema, opset=opset, output_columns=names)
    except OnnxPipeError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    _write_bytes(output, proto.SerializeToString())
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


def _write(view: DataView, names: Sequence[str], output: Path, fmt: str, progress: bool | None, source: str) -> int:
    """Stream ``view``'s columns ``names`` into ``output``; returns the number of rows.

    The rows go to a temporary file in ``output``'s folder that replaces it at the end (see
    :func:`onnxpipe._files.atomic_output`), so a failed or interrupted run leaves no
    half-written output (and an existing file as it was). ``source`` names the input, for a
    failure to read it.
    """
    out_schema = view.schema.select(names)
    cannot = f"cannot write {_quoted(output)}"
    rows = 0
    stack = contextlib.ExitStack()
    try:
        f = stack.enter_context(atomic_output(output, "the output"))
    except OnnxPipeError as exc:  # a link or a missing folder, made since the first check
        _fail(str(exc), EXIT_OUTPUT)
    except OSError as exc:
        _fail(f"{cannot}: {exc.strerror or exc}", EXIT_OUTPUT)
    try:
        with stack:
            try:
                writer = open_writer(f, fmt, out_schema)
            except OSError as exc:
                _fail(f"{cannot}: {exc.strerror or exc}", EXIT_OUTPUT)
            batches = iter(view.with_progress("predicting", enabled=progress).batches())
            try:
                while True:
                    try:
                        batch = next(batches)
                    except StopIteration:
                        break
                    except OSError as exc:
                        _fail(f"cannot read {source}: {exc.strerror or exc}", EXIT_BAD_INPUT)
                    try:
                        writer.write(batch.select(list(names)))
                    except OSError as exc:
                        _fail(f"{cannot}: {exc.strerror or exc}", EXIT_OUTPUT)
                    rows += batch.num_rows
            except BaseException:
                writer.discard()
                raise
            try:
                writer.close()
            except OSError as exc:
                _fail(f"{cannot}: {exc.strerror or exc}", EXIT_OUTPUT)
    except OSError as exc:  # flushing or renaming the temporary file
        _fail(f"{cannot}: {exc.strerror or exc}", EXIT_OUTPUT)
    return rows


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

\b
Limits (each an error naming the file, the line or the row): the model file
(and a saved model's contents) and a Parquet row group at most --max-bytes;
one CSV/TSV row or JSON line at most 64 MiB (or --max-bytes if smaller);
JSON nested at most 64 levels; an image at most 89,478,485 pixels
(Pillow's decompression-bomb limit), a batch of images 2^29 pixels.

\b
OUTPUT is written to a temporary file in its folder, renamed over it at the
end. It must not be a symbolic link, the input or the model. SIGINT (Ctrl-C)
and SIGTERM stop the run, remove the temporary file and exit with 130 and
143.
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
    type=click.Path(path_type=Path),
    help="Result file (replaced if it exists; not a symbolic link, the input or the model); with --engine, a folder.",
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
@click.option(
    "--engine",
    type=click.Choice(["dask", "ray", "spark"]),
    help="Score a partitioned Parquet data set (INPUT: a folder or a quoted glob such as 'data/*.parquet') into "
    "OUTPUT/part-NNNNN.parquet on this engine (its extra installed), one task per file.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="With --engine: worker processes on this machine (default: one per core).",
)
@_max_bytes_option
@_debug_option
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
    engine: str | None,
    workers: int | None,
    max_bytes: int,
) -> None:
    wanted = _column_list(columns)
    sep = _separator(separator)
    if _run.quiet:
        progress = False
    if wanted is not None and keep_input:
        raise click.UsageError("--columns and --keep-input cannot be combined: --columns names every output column")
    if engine is not None:
        _predict_on_engine(model, input_path, output, engine, workers, wanted, keep_input, progress, max_bytes)
        return
    if workers is not None:
        raise click.UsageError("--workers needs --engine")
    if output.is_dir():
        _fail(f"the output {_quoted(output)} is a folder; give a file (a folder of parts needs --engine)", EXIT_OUTPUT)
    try:
        fmt_out = format_of(output, format_out, "--format-out")
    except InvalidArgumentError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    _check_output(output, [("input", input_path), ("model", Path(model))])
    pipeline = _open_pipeline(model, max_bytes)
    try:
        if input_path.is_dir():
            view, kept = _image_folder_view(pipeline, input_path, wanted, keep_input, batch_size, max_bytes)
            unread = ["Label"]
        else:
            fmt_in = format_of(input_path, format_in, "--format-in")
            source = TableSource(input_path, fmt_in, separator=sep, has_header=not no_header, max_bytes=max_bytes)
            view, kept = _table_view(pipeline, source, wanted, keep_input, batch_size), []
            unread = source.extra_columns(pipeline.input_schema.columns)
        scored = pipeline.model.transform(view)
        if pipeline.outputs is not None:
            scored = _without_batch_dimension(scored, pipeline.outputs)
        names = _output_columns(pipeline, view.schema, scored.schema, wanted, keep_input, kept, unread)
        rows = _write(scored, names, output, fmt_out, progress, _quoted(input_path))
    except OnnxPipeError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except OSError as exc:  # reading the input
        _fail(f"cannot read {_quoted(exc.filename or input_path)}: {exc.strerror or exc}", EXIT_BAD_INPUT)
    _note(f"wrote {rows} rows to {output}")


def _parquet_parts(input_path: Path) -> list[Path]:
    """The Parquet files of INPUT with --engine: a folder's ``*.parquet``, a glob's matches, or one file."""
    import glob

    if input_path.is_dir():
        files = sorted(input_path.glob("*.parquet"))
    elif glob.has_magic(str(input_path)):
        files = sorted(Path(p) for p in glob.glob(str(input_path)))
    else:
        files = [input_path] if input_path.is_file() else []
    if not files:
        _fail(
            f"no Parquet files in {_quoted(input_path)} (give a folder, a quoted glob or a .parquet file)",
            EXIT_BAD_INPUT,
        )
    other = [f for f in files if f.suffix.lower() not in (".parquet", ".pq")]
    if other:
        _fail(f"--engine reads Parquet files only; {_quoted(other[0])} is not one", EXIT_BAD_INPUT)
    return files


def _predict_on_engine(
    model: str,
    input_path: Path,
    output: Path,
    engine: str,
    workers: int | None,
    wanted: Sequence[str] | None,
    keep_input: bool,
    progress: bool | None,
    max_bytes: int,
) -> None:
    """``predict --engine``: a partitioned Parquet data set scored on Dask, Ray or Spark."""
    from onnxpipe.data import load_from_parquet
    from onnxpipe.distributed import score_parquet_files

    if not _is_saved_model(Path(model)):
        _fail(
            f"--engine scores saved pipelines (.zip); wrap {_quoted(model)} in one: "
            "ctx.model.save(ctx.transforms.apply_onnx_model(model_file=...), schema, 'model.zip')",
            EXIT_BAD_INPUT,
        )
    parts = _parquet_parts(input_path)
    if output.exists() and not output.is_dir():
        _fail(f"the output {_quoted(output)} is a file; with --engine it is a folder of parts", EXIT_OUTPUT)
    if output.is_symlink():
        _fail(f"cannot write {_quoted(output)}: it is a symbolic link", EXIT_OUTPUT)
    pipeline = _open_pipeline(model, max_bytes)
    try:
        view = load_from_parquet(parts[0])
        names = _output_columns(
            pipeline, view.schema, pipeline.model.output_schema(view.schema), wanted, keep_input, []
        )
        bar = _PartsProgress(len(parts), progress)
        try:
            rows = score_parquet_files(
                Path(model), parts, output, engine=engine, workers=workers, columns=names, on_part=bar
            )
        finally:
            bar.close()
    except OnnxPipeError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except ImportError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except Exception as exc:  # the engine's own report of a failed job (a worker's error inside)
        _fail(f"the {engine} job failed: {type(exc).__name__}: {exc}", EXIT_OUTPUT)
    _note(f"wrote {rows} rows in {len(parts)} parts to {output} ({engine})")


class _PartsProgress:
    """A bar of parts written, on stderr (under --progress's rules)."""

    def __init__(self, total: int, enabled: bool | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        self._progress: Any = None
        if enabled if enabled is not None else console.is_terminal:
            self._progress = Progress(
                TextColumn("scoring"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("parts"),
                TimeElapsedColumn(),
                console=console,
            )
            self._progress.start()
            self._task = self._progress.add_task("parts", total=total)

    def __call__(self, rows: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


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
            c = Column(c.name, ct.with_shape(shape), c.slot_names if shape else None)
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


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0  # reading it says why


def _image_folder_view(
    pipeline: _Pipeline,
    folder: Path,
    wanted: Sequence[str] | None,
    keep_input: bool,
    batch_size: int | None,
    max_bytes: int,
) -> tuple[DataView, list[str]]:
    """The image files under ``folder`` (absolute paths, sorted), in the column the pipeline's
    first step reads paths from, and ``Label`` (the folder of each file) when the pipeline reads
    it or the output keeps it. Returns the view and the columns every output keeps (the paths).

    A batch holds ``batch_size`` files (default 64), fewer when their images would add up to more
    than MAX_BATCH_PIXELS pixels (from their headers; decoded images) or their bytes to more than
    ``max_bytes`` (raw bytes): one image or file alone may always make a batch, its own limits
    apply when it is read."""
    from onnxpipe.data._images import MAX_BATCH_PIXELS, image_pixels, load_from_image_folder
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
    cost: Callable[[str], int]
    if isinstance(first, ImageLoadingTransformer):
        cost, budget = image_pixels, MAX_BATCH_PIXELS
    else:
        cost, budget = _file_size, max_bytes

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in files.batches():
            renamed = pa.RecordBatch.from_arrays([batch.column(n) for n in names], schema=target)
            paths = [str(p) for p in batch.column("ImagePath").to_pylist()]
            start = 0
            while start < len(paths):
                end, used = start, 0
                while end < len(paths) and end - start < rows:
                    more = cost(paths[end])
                    if end > start and used + more > budget:
                        break
                    used += more
                    end += 1
                yield renamed.slice(start, end - start)
                start = end

    return DataView(schema, batches, files.row_count), [path_column]


# --------------------------------------------------------------------------------------------
# serve


@main.command("serve", epilog=_EPILOG, no_args_is_help=True)
@click.argument("model", metavar="MODEL_OR_REPOSITORY")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port to listen on.")
@click.option(
    "--max-batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Most rows concurrent requests to one model are merged into (1: no merging).",
)
@click.option(
    "--max-batch-delay-ms",
    type=click.FloatRange(min=0, max=10_000),
    default=0.0,
    show_default=True,
    help="Longest wait for more requests to merge, in milliseconds (0: requests that arrive while a "
    "batch is scored are merged into the next one, with no wait).",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1),
    default=64 * 2**20,
    show_default="64 MiB",
    help="Largest request body (larger ones are answered with 413).",
)
@click.option(
    "--max-rows", type=click.IntRange(min=1), default=65536, show_default=True, help="Most rows in one request."
)
@click.option(
    "--request-timeout-s",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Longest a request may take (longer ones are answered with 504).",
)
@click.option(
    "--max-queue",
    type=click.IntRange(min=1),
    default=1024,
    show_default=True,
    help="Most requests per model waiting or scoring (more are answered with 503 and Retry-After).",
)
@click.option(
    "--grpc-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Also serve gRPC (KServe V2 GRPCInferenceService) on this port (0: any free one); off unless given.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Server processes on the one port, each with its own copy of the models (REST only).",
)
@click.option(
    "--reload-interval-s",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="How often the model files are checked for changes, which are loaded and swapped in (0: never).",
)
def serve_command(
    model: str,
    host: str,
    port: int,
    max_batch_size: int,
    max_batch_delay_ms: float,
    max_body_bytes: int,
    max_rows: int,
    request_timeout_s: float,
    max_queue: int,
    grpc_port: int | None,
    workers: int,
    reload_interval_s: float,
) -> None:
    """Serve a saved pipeline (.zip), a bare ONNX model (.onnx) or a model repository
    (a folder of <name>/<version>/model.zip|model.onnx) over the Open Inference Protocol
    (KServe V2 REST, with the binary tensor extension) until SIGINT or SIGTERM, which stop
    accepting requests, finish those in flight and exit 0. Set ONNXPIPE_SERVE_TOKEN to require
    'Authorization: Bearer <token>' on every route but health. Needs the serve extra:
    pip install 'onnxpipe[serve]'."""
    try:
        from onnxpipe.serving import RepositoryError, ServerSettings, serve
    except ImportError as exc:
        _fail(f"onnxpipe serve needs the serve extra: pip install 'onnxpipe[serve]' ({exc})", EXIT_BAD_INPUT)
    if grpc_port is not None and workers > 1:
        _fail("--grpc-port is served by one process: leave --workers at 1 to serve gRPC", EXIT_BAD_INPUT)
    if grpc_port is not None:
        try:
            import grpc  # noqa: F401
        except ImportError as exc:
            _fail(f"--grpc-port needs grpcio: pip install 'onnxpipe[serve]' ({exc})", EXIT_BAD_INPUT)
    settings = ServerSettings(
        max_batch_size=max_batch_size,
        max_batch_delay_ms=max_batch_delay_ms,
        max_body_bytes=max_body_bytes,
        max_rows=max_rows,
        request_timeout_s=request_timeout_s,
        max_queue=max_queue,
        token=os.environ.get("ONNXPIPE_SERVE_TOKEN") or None,
        reload_interval_s=reload_interval_s,
    )
    # uvicorn's own SIGINT/SIGTERM handling (a graceful shutdown) replaces the CLI's, which would
    # stop ONNX Runtime calls in flight; the signal uvicorn re-raises once done then ends nothing.
    previous_fd = signal.set_wakeup_fd(-1) if threading.current_thread() is threading.main_thread() else None
    previous = {}
    if previous_fd is not None:
        previous = {s: signal.signal(s, lambda signum, frame: None) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        serve(model, host=host, port=port, settings=settings, grpc_port=grpc_port, workers=workers)
    except RepositoryError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if previous_fd is not None:
            signal.set_wakeup_fd(previous_fd)


if __name__ == "__main__":
    main()
