"""The ``onnxpipe`` command line: inspect ONNX models and generate their schema classes.

Exit codes: 0 success, 1 the output could not be written, 2 bad usage or a bad input (missing
file, malformed model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.text import Text

from onnxpipe import __version__
from onnxpipe.errors import OnnxPipeError
from onnxpipe.onnx._inspect import generate_schema_code, inspect_model, render_model_info
from onnxpipe.onnx._model import ModelInfo

__all__ = ["main"]


def _fail(message: str, code: int) -> NoReturn:
    # Rich picks colors only for a terminal, and honours NO_COLOR.
    Console(stderr=True, highlight=False).print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)
    raise SystemExit(code)


def _load(model: str) -> ModelInfo:
    try:
        return inspect_model(model)
    except OnnxPipeError as exc:
        _fail(str(exc), 2)
    except OSError as exc:  # unreadable file, e.g. permissions
        _fail(f"cannot read {model!r}: {exc.strerror or exc}", 2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="onnxpipe")
def main() -> None:
    """Typed ML pipelines that speak ONNX: inspect models and generate their schema classes."""


@main.command("inspect")
@click.argument("model", metavar="MODEL")
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON instead of tables.")
def inspect_command(model: str, as_json: bool) -> None:
    """Show MODEL's inputs and outputs (names, element types, dimensions) and its properties."""
    info = _load(model)
    if as_json:
        # Plain stdout, not rich: JSON must stay byte-exact for pipes (no wrapping, no colors).
        click.echo(json.dumps(info.to_json(), indent=2, ensure_ascii=False))
        return
    Console(highlight=False).print(render_model_info(info))


@main.command("schema")
@click.argument("model", metavar="MODEL")
@click.option("--input-class", default="OnnxInput", show_default=True, help="Name of the inputs' class.")
@click.option("--output-class", default="OnnxOutput", show_default=True, help="Name of the outputs' class.")
@click.option(
    "-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path), help="Write the code to this file."
)
def schema_command(model: str, input_class: str, output_class: str, output: Path | None) -> None:
    """Print the Python dataclasses that declare MODEL's inputs and outputs."""
    info = _load(model)
    try:
        code = generate_schema_code(info, input_class=input_class, output_class=output_class)
    except OnnxPipeError as exc:
        _fail(str(exc), 2)
    if output is None:
        click.echo(code, nl=False)
        return
    try:
        output.write_text(code, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {str(output)!r}: {exc.strerror or exc}", 1)
    Console(stderr=True, highlight=False).print(Text(f"wrote {output}"), soft_wrap=True)
