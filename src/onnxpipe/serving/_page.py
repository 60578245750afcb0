"""The typed JSON route for people (``POST /v2/models/{name}/predict`` with ``{"rows": [...]}``),
its OpenAPI 3 document generated from each model's schema, and two self-contained HTML pages: the
models at ``/`` (their inputs and outputs, and a form to try each) and ``/docs`` (the OpenAPI
document as tables). The pages load nothing from elsewhere; every name and value is escaped."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import numpy as np
import orjson

from onnxpipe import DType, TensorType
from onnxpipe.serving._models import ServedModel, v2_datatype
from onnxpipe.serving._protocol import ProtocolError

__all__ = ["openapi", "render_docs", "render_index", "rows_request", "rows_response"]

_ROWS_SHAPE = '{"rows": [{column: value, ...}, ...]}'


# --------------------------------------------------------------------------------------------
# rows <-> the Open Inference Protocol's tensors


def _row_shape(value: Any) -> list[int]:
    dims: list[int] = []
    while isinstance(value, list):
        dims.append(len(value))
        value = value[0] if value else None
    return dims


def rows_request(model: ServedModel, doc: Any, max_rows: int) -> bytes:
    """A ``{"rows": [...]}`` document as the V2 ``infer`` request body that carries the same data
    (so both routes share one parser, its checks and its messages)."""
    rows = doc.get("rows") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ProtocolError(f"the request must be {_ROWS_SHAPE} with at least one row")
    if len(rows) > max_rows:
        raise ProtocolError(f"the request has {len(rows):,} rows, more than the server's limit of {max_rows:,}", 413)
    if not all(isinstance(r, dict) for r in rows):
        raise ProtocolError(f"each row must be an object keyed by column name: {_ROWS_SHAPE}")
    first: dict[str, Any] = rows[0]
    names = [c.name for c in model.inputs] + [c.name for c in model.optional_inputs if c.name in first]
    wanted = set(names)
    for i, row in enumerate(rows):
        if row.keys() != wanted:
            missing = [n for n in names if n not in row]
            if missing:
                raise ProtocolError(f"row {i} has no column {missing[0]!r}; model {model.name!r} takes {names}")
            extra = next(k for k in row if k not in wanted)
            raise ProtocolError(f"row {i} has column {extra!r}, which model {model.name!r} does not take: {names}")
    inputs: list[dict[str, Any]] = []
    for name in names:
        column = model.input_column(name)
        assert column is not None and isinstance(column.type, TensorType)
        values = [r[name] for r in rows]
        inputs.append(
            {
                "name": name,
                "datatype": v2_datatype(column.type.dtype),
                "shape": [len(rows), *_row_shape(values[0])],
                "data": values,
            }
        )
    return orjson.dumps({"inputs": inputs})


def _clean(value: Any) -> Any:
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def rows_response(model: ServedModel, results: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The result columns as ``{"rows": [{column: value, ...}, ...]}`` (NaN and infinities: null)."""
    names = [c.name for c in model.outputs]
    columns = {n: _clean(results[n].tolist()) for n in names}
    count = len(results[names[0]]) if names else 0
    return {
        "model_name": model.name,
        "model_version": model.version,
        "rows": [{n: columns[n][i] for n in names} for i in range(count)],
    }


# --------------------------------------------------------------------------------------------
# OpenAPI


def _scalar_schema(dtype: DType, nullable: bool) -> dict[str, Any]:
    if dtype is DType.BOOL:
        return {"type": "boolean"}
    if dtype is DType.STRING:
        return {"type": "string"}
    if dtype.is_integer:
        return {"type": "integer", "format": "int64" if dtype.numpy.itemsize == 8 else "int32"}
    schema: dict[str, Any] = {"type": "number", "format": "double" if dtype is DType.FLOAT64 else "float"}
    if nullable:
        schema["nullable"] = True  # NaN and infinities are answered as null
    return schema


def _column_schema(ct: Any, output: bool) -> dict[str, Any]:
    assert isinstance(ct, TensorType)
    schema = _scalar_schema(ct.dtype, output)
    for d in reversed(ct.shape):
        schema = {"type": "array", "items": schema, **({"minItems": d, "maxItems": d} if d is not None else {})}
    schema["description"] = f"{ct} (V2 {v2_datatype(ct.dtype)}, row shape {list(ct.shape)})"
    return schema


def _component(model: ServedModel) -> str:
    return f"{model.name}.v{model.version}"


def _paths_of(model: ServedModel, latest: bool) -> list[str]:
    name = quote(model.name, safe="")
    paths = [f"/v2/models/{name}/versions/{quote(model.version, safe='')}/predict"]
    if latest:
        paths.insert(0, f"/v2/models/{name}/predict")
    return paths


def openapi(models: Sequence[ServedModel], latest: Mapping[str, str], version: str, auth: bool) -> dict[str, Any]:
    """An OpenAPI 3 document of the ``predict`` routes, one request and response schema per model
    version, from its input and output columns (``latest``: model name -> its latest version)."""
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
    }
    paths: dict[str, Any] = {}
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for m in models:
        key = _component(m)
        row_in = {
            "type": "object",
            "additionalProperties": False,
            "required": [c.name for c in m.inputs],
            "properties": {c.name: _column_schema(c.type, False) for c in (*m.inputs, *m.optional_inputs)},
        }
        row_out = {
            "type": "object",
            "required": [c.name for c in m.outputs],
            "properties": {c.name: _column_schema(c.type, True) for c in m.outputs},
        }
        schemas[f"{key}.request"] = {
            "type": "object",
            "required": ["rows"],
            "properties": {"rows": {"type": "array", "minItems": 1, "items": row_in}},
        }
        schemas[f"{key}.response"] = {
            "type": "object",
            "required": ["model_name", "model_version", "rows"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "rows": {"type": "array", "items": row_out},
            },
        }
        responses: dict[str, Any] = {
            "200": {
                "description": "One result row per request row.",
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{key}.response"}}},
            },
            "400": {"description": "A request the model cannot take (the message says why).", **error},
            "404": {"description": "An unknown model or version.", **error},
            "413": {"description": "Too large a body or too many rows.", **error},
            "503": {"description": "The model's queue is full; retry after Retry-After seconds.", **error},
            "504": {"description": "The request took longer than the server's timeout.", **error},
        }
        if auth:
            responses["401"] = {"description": "A missing or wrong bearer token.", **error}
        for path in _paths_of(m, latest.get(m.name) == m.version):
            paths[path] = {
                "post": {
                    "operationId": f"predict.{key}" + (".latest" if "/versions/" not in path else ""),
                    "summary": f"Score rows with model {m.name} version {m.version}",
                    "tags": [m.name],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{key}.request"}}},
                    },
                    "responses": responses,
                }
            }
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "onnxpipe serve", "version": version},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc


# --------------------------------------------------------------------------------------------
# HTML

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}"
    "th{background:#f4f4f4}textarea{width:100%;font-family:monospace}pre{background:#f8f8f8;padding:.5em}"
)

# Posts a form's textarea to its data-url and shows the answer as text (never as HTML).
_SCRIPT = """
for (const form of document.querySelectorAll("form.try")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const out = form.querySelector("pre");
    const headers = {"Content-Type": "application/json"};
    const token = document.getElementById("token");
    if (token && token.value) headers["Authorization"] = "Bearer " + token.value;
    try {
      const response = await fetch(form.dataset.url, {method: "POST", headers, body: form.elements.rows.value});
      const text = await response.text();
      let shown = text;
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) {}
      out.textContent = response.status + "\\n" + shown;
    } catch (error) {
      out.textContent = String(error);
    }
  });
}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str, nonce: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}"
        f'<script nonce="{_e(nonce)}">{_SCRIPT}</script></body></html>'
    )


def content_security_policy(nonce: str) -> str:
    """The pages' policy: nothing from elsewhere, only the page's own script and requests."""
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


def _example_value(ct: TensorType) -> Any:
    value: Any = (
        False if ct.dtype is DType.BOOL else "" if ct.dtype is DType.STRING else 0 if ct.dtype.is_integer else 0.0
    )
    for d in reversed(ct.shape):
        value = [value] * (d if d is not None else 1)
    return value


def _example(model: ServedModel) -> str:
    row = {c.name: _example_value(c.type) for c in model.inputs if isinstance(c.type, TensorType)}
    return orjson.dumps({"rows": [row]}, option=orjson.OPT_INDENT_2).decode()


def _columns_table(columns: Sequence[Any]) -> str:
    head = "<tr><th>column</th><th>type</th><th>datatype</th><th>shape</th></tr>"
    rows = "".join(
        f"<tr><td><code>{_e(c.name)}</code></td><td>{_e(c.type)}</td>"
        f"<td>{_e(v2_datatype(c.type.dtype) if isinstance(c.type, TensorType) else '')}</td>"
        f"<td>{_e(list(c.type.shape) if isinstance(c.type, TensorType) else '')}</td></tr>"
        for c in columns
    )
    return f"<table>{head}{rows}</table>"


def _token_field(auth: bool) -> str:
    if not auth:
        return ""
    return '<p><label>Bearer token <input id="token" type="password" autocomplete="off"></label></p>'


def render_index(models: Sequence[ServedModel], latest: Mapping[str, str], auth: bool, nonce: str) -> str:
    """The page at ``/``: each model version's inputs and outputs and a form to try ``predict``."""
    parts = [
        "<h1>onnxpipe serve</h1>",
        '<p><a href="docs">API documentation</a> · <a href="openapi.json">OpenAPI document</a> · '
        '<a href="metrics">metrics</a></p>',
        _token_field(auth),
    ]
    for m in models:
        url = _paths_of(m, False)[0]
        tag = " (latest)" if latest.get(m.name) == m.version else ""
        parts.append(
            f'<section class="model"><h2><code>{_e(m.name)}</code> version {_e(m.version)}{_e(tag)}</h2>'
            f"<p>{_e(m.platform)}: <code>{_e(m.path.name)}</code></p>"
            f"<h3>Inputs</h3>{_columns_table(m.inputs)}"
            + (f"<h3>Optional inputs</h3>{_columns_table(m.optional_inputs)}" if m.optional_inputs else "")
            + f"<h3>Outputs</h3>{_columns_table(m.outputs)}"
            f'<form class="try" data-url="{_e(url)}"><h3>Try it: <code>POST {_e(url)}</code></h3>'
            f'<textarea name="rows" rows="8">{_e(_example(m))}</textarea>'
            '<p><button type="submit">Predict</button></p><pre></pre></form></section>'
        )
    return _page("onnxpipe serve", "".join(parts), nonce)


def _describe(schema: Mapping[str, Any]) -> str:
    dims: list[str] = []
    while schema.get("type") == "array":
        dims.append(str(schema["maxItems"]) if "maxItems" in schema else "n")
        schema = schema["items"]
    kind = str(schema.get("type", "?")) + (f" ({schema['format']})" if "format" in schema else "")
    return f"array [{' x '.join(dims)}] of {kind}" if dims else kind


def _properties_table(row: Mapping[str, Any]) -> str:
    required = set(row.get("required", ()))
    head = "<tr><th>column</th><th>JSON</th><th>required</th><th>description</th></tr>"
    body = "".join(
        f"<tr><td><code>{_e(name)}</code></td><td>{_e(_describe(s))}</td>"
        f"<td>{'yes' if name in required else 'no'}</td><td>{_e(s.get('description', ''))}</td></tr>"
        for name, s in row.get("properties", {}).items()
    )
    return f"<table>{head}{body}</table>"


def render_docs(doc: Mapping[str, Any], nonce: str) -> str:
    """``/docs``: the OpenAPI document as tables, one section per path, with a form to try it."""
    schemas = doc["components"]["schemas"]
    auth = "security" in doc
    parts = [
        f"<h1>{_e(doc['info']['title'])} {_e(doc['info']['version'])}</h1>",
        f'<p>OpenAPI {_e(doc["openapi"])}: <a href="openapi.json">openapi.json</a> · <a href="./">models</a></p>',
        _token_field(auth),
    ]
    for path, item in doc["paths"].items():
        op = item["post"]
        request_ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        response_ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        row_in = schemas[request_ref]["properties"]["rows"]["items"]
        row_out = schemas[response_ref]["properties"]["rows"]["items"]
        required = row_in["required"]
        example = {"rows": [{n: _example_from_schema(row_in["properties"][n]) for n in required}]}
        example_text = orjson.dumps(example, option=orjson.OPT_INDENT_2).decode()
        statuses = "".join(
            f"<tr><td>{_e(code)}</td><td>{_e(r['description'])}</td></tr>" for code, r in op["responses"].items()
        )
        parts.append(
            f'<section class="path"><h2><code>POST {_e(path)}</code></h2><p>{_e(op["summary"])}</p>'
            f'<h3>Request: <code>{{"rows": [row, ...]}}</code>, each row</h3>{_properties_table(row_in)}'
            f'<h3>Response: <code>{{"rows": [row, ...]}}</code>, each row</h3>{_properties_table(row_out)}'
            f"<h3>Statuses</h3><table><tr><th>status</th><th>meaning</th></tr>{statuses}</table>"
            f'<form class="try" data-url="{_e(path)}"><h3>Try it</h3>'
            f'<textarea name="rows" rows="8">{_e(example_text)}</textarea>'
            '<p><button type="submit">Send</button></p><pre></pre></form></section>'
        )
    return _page("onnxpipe serve: API", "".join(parts), nonce)


def _example_from_schema(schema: Mapping[str, Any]) -> Any:
    if schema.get("type") == "array":
        return [_example_from_schema(schema["items"])] * int(schema.get("maxItems", 1))
    return {"boolean": False, "string": "", "integer": 0}.get(str(schema.get("type")), 0.0)
