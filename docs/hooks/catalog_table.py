"""MkDocs hook: ``<!-- every-catalog-method -->`` in a page becomes a table of every method of
every catalog of an ``MLContext``, each beside its ML.NET twin, generated from the catalogs at
build time so that a new component appears without editing the page."""

from __future__ import annotations

import inspect
import re
from typing import Any

MARKER = "<!-- every-catalog-method -->"
_ROLE = re.compile(r":\w+:`~?([^`]+)`")

# ML.NET's names where snake_case -> PascalCase does not give them, and onnxpipe's own methods.
_MLNET_NAMES = {"kmeans": "KMeans", "infer_columns": "mlContext.Auto().InferColumns"}
_ONNXPIPE_ONLY = {
    "crop_images",
    "top_k_labels",
    "load_from_arrow",
    "load_from_dict",
    "load_from_pandas",
    "load_from_parquet",
    "load_from_image_folder",
    "save_as_parquet",
}


def _pascal(snake: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


def catalog_methods() -> list[tuple[str, str, Any]]:
    """(path under the context, method name, the method) for every public catalog method."""
    import onnxpipe as op

    found: list[tuple[str, str, Any]] = []

    def walk(obj: object, path: str) -> None:
        for name in sorted(dir(obj)):
            if name.startswith("_"):
                continue
            value = getattr(obj, name)
            if type(value).__module__.startswith("onnxpipe.") and not callable(value):
                walk(value, f"{path}.{name}")
            elif callable(value) and path != "ctx":
                found.append((path, name, value))

    walk(op.MLContext(), "ctx")
    return found


def _mlnet(path: str, name: str) -> str:
    if name in _ONNXPIPE_ONLY:
        return "— (onnxpipe only)"
    if name in _MLNET_NAMES and "." in _MLNET_NAMES[name]:
        return f"`{_MLNET_NAMES[name]}`"
    catalog = ".".join(_pascal(part) for part in path.split(".")[1:])
    return f"`mlContext.{catalog}.{_MLNET_NAMES.get(name, _pascal(name))}`"


def table() -> str:
    rows = ["| ML.NET (C#) | onnxpipe | What it does |", "|---|---|---|"]
    for path, name, method in catalog_methods():
        doc = _ROLE.sub(r"`\1`", inspect.getdoc(method) or "")  # Sphinx roles read as code here
        summary = doc.split("\n\n")[0].replace("\n", " ").replace("|", "\\|")
        if len(summary) > 160:
            summary = summary[:157].rsplit(" ", 1)[0] + "…"
        rows.append(f"| {_mlnet(path, name)} | `{path}.{name}` | {summary} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return markdown.replace(MARKER, table()) if MARKER in markdown else markdown
