"""ML.NET's TextLoader settings embedded in a text file: the schema comment ``SaveAsText`` writes
before the data (its ``schema`` option, on by default) and ``TextLoader`` reads back when it is
given no columns::

    #@ TextLoader{
    #@   header+
    #@   sep=tab
    #@   col=Label:R4:0
    #@   col=Features:R4:1-4
    #@   col=Kind:U4[3]:5
    #@ }

The format, as ML.NET writes and reads it (TextSaver.CreateLoaderArguments and
WriteSchemaAsComment, TextLoader.Column / Range, TypeParsingUtils and KeyCount, CmdLexer):

* The ``#@`` lines among the file's leading comment lines (blank, ``//`` and ``#`` lines) are
  joined, each without its ``#@`` and surrounding spaces, into one settings text
  ``TextLoader{...}`` (or ``Text{...}``), read by ML.NET's command-line lexer: tokens split at
  spaces, ``name=value``, ``name+`` / ``name-`` for booleans, ``{...}`` groups a value, ``#``
  starts a comment to the end of the text.
* ``header+``: the first line after the comment is a header; ``sep=``: ``tab`` (the default),
  ``space``, ``comma``, ``semicolon``, ``bar``, ``colon`` or the character itself.
* ``col=Name:Type:Source`` (or ``Name:Source``, type R4), one per column, or the long form
  ``col={name=... type=... src=... key=...}`` ML.NET writes when the name needs quoting. Types:
  ``R4 R8 I1 I2 I4 I8 U1 U2 U4 U8 BL TX`` (and ``TS DT DZ UG``, read here as their text); a key
  type is ``U4[count]`` (``U4[0-2]``, the old ``[min-max]`` form, is the same 3 keys; ``U4[]``
  an unknown count). Sources are file column indices (0-based): ``3`` a scalar, ``1-4`` a
  vector (even ``5-5``), several ranges ``1,3-4`` one vector, ``2-*`` a vector to the end of
  the row.
* A key's text is its 0-based index: key ``k`` is written ``k - 1``, a missing key (0) empty.
* A later column hides an earlier one of the same name (ML.NET writes hidden columns too).
  ``quote``, ``sparse``, ``trim``, ``size``, ``threads``, ``rows``, ``hf`` and the like are read
  and left alone (the loader's own options decide); ``decimal`` other than ``.``, an escape
  character other than ``"`` and several separators are not read. onnxpipe's writer adds
  ``quote+`` (its text fields are quoted).

Reading is bounded: at most :data:`MAX_COMMENT_LINES` lines and :data:`MAX_COMMENT_BYTES`
bytes of comment and :data:`MAX_COMMENT_COLUMNS` columns; anything else than the settings
above (an unknown type or setting, a bad index, a vector of varying length ``2-**``) is a
ParseError naming the line. Nothing in the comment is evaluated: it is only split into tokens.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections.abc import Sequence

from onnxpipe._display import quoted
from onnxpipe.errors import ParseError
from onnxpipe.schema import DType

__all__ = [
    "MAX_COMMENT_BYTES",
    "MAX_COMMENT_COLUMNS",
    "MAX_COMMENT_LINES",
    "LoaderColumn",
    "LoaderSettings",
    "SourceRange",
    "format_comment",
    "kind_of",
    "parse_comment",
]

MAX_COMMENT_COLUMNS = 100_000
"""The most columns a schema comment may define (one ``col=`` each)."""
MAX_COMMENT_LINES = MAX_COMMENT_COLUMNS + 100
"""The most ``#@`` lines a schema comment may take."""
MAX_COMMENT_BYTES = 8 << 20
"""The most bytes the ``#@`` lines of a schema comment may take."""

_KINDS = {
    "i1": "I1",
    "u1": "U1",
    "i2": "I2",
    "u2": "U2",
    "i4": "I4",
    "u4": "U4",
    "i8": "I8",
    "u8": "U8",
    "r4": "R4",
    "num": "R4",
    "r8": "R8",
    "tx": "TX",
    "txt": "TX",
    "text": "TX",
    "bl": "BL",
    "bool": "BL",
    "ts": "TS",
    "timespan": "TS",
    "dt": "DT",
    "datetime": "DT",
    "dz": "DZ",
    "datetimezone": "DZ",
    "ug": "UG",
    "u16": "UG",
}
_DTYPES = {
    "I1": DType.INT8,
    "U1": DType.UINT8,
    "I2": DType.INT16,
    "U2": DType.UINT16,
    "I4": DType.INT32,
    "U4": DType.UINT32,
    "I8": DType.INT64,
    "U8": DType.UINT64,
    "R4": DType.FLOAT32,
    "R8": DType.FLOAT64,
    "BL": DType.BOOL,
    # Time spans, dates, dates with a time zone and 128-bit ids: onnxpipe has no such types, so
    # they are read as the text the file holds.
    "TX": DType.STRING,
    "TS": DType.STRING,
    "DT": DType.STRING,
    "DZ": DType.STRING,
    "UG": DType.STRING,
}
_KIND_OF_DTYPE = {
    DType.INT8: "I1",
    DType.UINT8: "U1",
    DType.INT16: "I2",
    DType.UINT16: "U2",
    DType.INT32: "I4",
    DType.UINT32: "U4",
    DType.INT64: "I8",
    DType.UINT64: "U8",
    DType.FLOAT16: "R4",  # written as float32 values
    DType.FLOAT32: "R4",
    DType.FLOAT64: "R8",
    DType.BOOL: "BL",
    DType.STRING: "TX",
}
_KEY_KINDS = ("U1", "U2", "U4", "U8")
_SEPARATOR_NAMES = {" ": "space", "\t": "tab", ",": "comma", ";": "semicolon", "|": "bar"}
_SEPARATORS = {"space": " ", "tab": "\t", "comma": ",", "colon": ":", "semicolon": ";", "bar": "|"}
_INT32 = 2**31 - 1
_UINT64 = 2**64 - 1


def kind_of(dtype: DType) -> str:
    """ML.NET's name of the type the text of a ``dtype`` value is (``TX`` for anything it has no
    number type for)."""
    return _KIND_OF_DTYPE.get(dtype, "TX")


@dataclasses.dataclass(frozen=True)
class SourceRange:
    """One range of file columns (ML.NET's ``TextLoader.Range``): ``min`` to ``max`` inclusive,
    ``max`` None with ``auto_end`` for the rest of the row."""

    min: int
    max: int | None
    auto_end: bool = False
    vector: bool = False

    def text(self) -> str:
        if self.max is None:
            return f"{self.min}-*"
        return f"{self.min}-{self.max}" if self.vector or self.max != self.min else str(self.min)


@dataclasses.dataclass(frozen=True)
class LoaderColumn:
    """One ``col=`` of a schema comment. ``key`` is False for a column that is not a key, else the
    key count (None: not known)."""

    name: str
    kind: str
    sources: tuple[SourceRange, ...]
    key: int | bool | None = False
    line: int = 0

    @property
    def dtype(self) -> DType:
        return _DTYPES[self.kind]

    @property
    def is_key(self) -> bool:
        return self.key is not False

    @property
    def key_count(self) -> int | None:
        """The number of keys; None when not known, or not a key."""
        return None if isinstance(self.key, bool) else self.key

    @property
    def is_vector(self) -> bool:
        return len(self.sources) > 1 or any(r.vector for r in self.sources)

    def text(self) -> str:
        """The ``col=`` value: ``Name:Type:Source``, or the long form when the name needs quoting."""
        kind = self.kind
        count = "" if self.key_count is None else str(self.key_count)
        src = ",".join(r.text() for r in self.sources)
        if not _needs_quoting(self.name) and ":" not in self.name:
            return f"{self.name}:{kind}{f'[{count}]' if self.is_key else ''}:{src}"
        # As ML.NET's CmdParser.GetSettings writes a column: the type unless R4 (the default).
        settings = f"name={_quote(self.name)}"
        if kind != "R4" or self.is_key:
            settings += f" type={kind}"
        settings += f" src={_quote(src)}"
        if self.is_key:
            settings += f" key={_quote(count)}"
        return _quote(settings, force=True)


@dataclasses.dataclass(frozen=True)
class LoaderSettings:
    """What a schema comment says: how to split the rows and which columns they hold."""

    separator: str
    has_header: bool
    columns: tuple[LoaderColumn, ...]
    first_line: int
    last_line: int


def format_comment(separator: str, header: bool, columns: Sequence[LoaderColumn]) -> str:
    """The ``#@`` lines ML.NET's SaveAsText writes before the data, with ``quote+`` added: the
    text fields of onnxpipe's files are quoted (ML.NET reads quotes only when told)."""
    lines = ["#@ TextLoader{"]
    if header:
        lines.append("#@   header+")
    lines.append(f"#@   sep={_SEPARATOR_NAMES.get(separator) or _quote(separator)}")
    lines.append("#@   quote+")
    lines += [f"#@   col={c.text()}" for c in columns]
    lines.append("#@ }")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# ML.NET's command-line lexer (CmdLexer): tokens, {...} groups, "..." strings, \ escapes


_PLAIN = re.compile(r'[^\s{}=\\"#]+')
_IN_CURLY = re.compile(r'[^{}"\\]+')
_IN_STRING = re.compile(r'[^"\\\r\n]+')
_TO_LINE_END = re.compile(r"[^\r\n]*")
_SPACE = re.compile(r"\s+")


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.error = False

    def tokens(self) -> list[tuple[str, int]]:
        """Every token with where it starts."""
        out: list[tuple[str, int]] = []
        while True:
            self._skip_space()
            if self.pos >= len(self.text):
                return out
            start = self.pos
            out.append((self.token(), start))

    def _skip_space(self) -> None:
        s = self.text
        while True:
            m = _SPACE.match(s, self.pos)
            if m:
                self.pos = m.end()
            if self.pos < len(s) and s[self.pos] == "#":  # a comment, to the end of its line
                self.pos = _TO_LINE_END.match(s, self.pos).end()  # type: ignore[union-attr]
                continue
            return

    def token(self) -> str:
        s, buf = self.text, []
        while self.pos < len(s):
            m = _PLAIN.match(s, self.pos)
            if m:
                buf.append(m.group())
                self.pos = m.end()
                continue
            ch = s[self.pos]
            if ch == "{":
                if not buf:
                    self._curly_group(buf)
                break
            if ch in "}=":
                if not buf:
                    buf.append(ch)
                    self.pos += 1
                    self.error = self.error or ch == "}"  # a } on its own closes nothing
                break
            if ch == "\\":
                self._slash(buf, reduce=True)
            elif ch == '"':
                self._string(buf, reduce=True)
            else:  # a space or the # of a comment
                break
        return "".join(buf)

    def _curly_group(self, buf: list[str]) -> None:
        """A {...} group, braces and escapes kept."""
        s, depth = self.text, 0
        while self.pos < len(s):
            m = _IN_CURLY.match(s, self.pos)
            if m:
                buf.append(m.group())
                self.pos = m.end()
                continue
            ch = s[self.pos]
            if ch == '"':
                self._string(buf, reduce=False)
                continue
            if ch == "\\":
                self._slash(buf, reduce=False)
                continue
            buf.append(ch)
            self.pos += 1
            depth += 1 if ch == "{" else -1
            if depth <= 0:
                return
        self.error = True  # not closed

    def curly_contents(self) -> str:
        """The contents of the {...} group at the start: braces and their escapes shed."""
        s, depth, buf = self.text, 0, []
        self.pos = 1
        while self.pos < len(s):
            m = _IN_CURLY.match(s, self.pos)
            if m:
                buf.append(m.group())
                self.pos = m.end()
                continue
            ch = s[self.pos]
            if ch == '"':
                self._string(buf, reduce=False)
                continue
            if ch == "\\":
                self._slash(buf, reduce=depth == 0)
                continue
            self.pos += 1
            if ch == "{":
                depth += 1
            else:
                depth -= 1
                if depth < 0:
                    return "".join(buf)
            buf.append(ch)
        self.error = True
        return "".join(buf)

    def _slash(self, buf: list[str], *, reduce: bool) -> None:
        s, start = self.text, self.pos
        while self.pos < len(s) and s[self.pos] == "\\":
            self.pos += 1
        count = self.pos - start
        if self.pos < len(s) and s[self.pos] in '"{}#':  # escapes: half of them stand for slashes
            buf.append("\\" * (count // 2 if reduce else count))
            if count % 2:
                buf.append(s[self.pos])
                self.pos += 1
        else:
            buf.append("\\" * count)

    def _string(self, buf: list[str], *, reduce: bool) -> None:
        s = self.text
        if not reduce:
            buf.append('"')
        self.pos += 1
        while self.pos < len(s):
            m = _IN_STRING.match(s, self.pos)
            if m:
                buf.append(m.group())
                self.pos = m.end()
                continue
            ch = s[self.pos]
            if ch == '"':
                if not reduce:
                    buf.append('"')
                self.pos += 1
                return
            if ch == "\\":
                self._slash(buf, reduce=reduce)
                continue
            self.error = True  # a line break inside a string
            return
        self.error = True


def _unquote(value: str) -> str | None:
    """A ``{...}`` value's contents (ML.NET's UnquoteValue); None when the group is not closed
    at the value's end. Any other value as it is."""
    if not (value.startswith("{") and value.endswith("}")):
        return value
    lexer = _Lexer(value)
    contents = lexer.curly_contents()
    return None if lexer.error or lexer.pos != len(value) else contents


def _needs_quoting(value: str) -> bool:
    """Whether ``value`` does not read back as one token of itself (CmdQuoter.NeedsQuoting)."""
    if not value or value[0] == "{":
        return True
    lexer = _Lexer(value)
    return lexer.token() != value or lexer.error or lexer.pos != len(value)


def _quote(value: str, *, force: bool = False) -> str:
    """``value`` as one token (CmdQuoter.QuoteValue): as it is if it lexes so, else in braces,
    with backslash escapes where braces alone would not read back."""
    if not value:
        return "{}"
    if not force and not _needs_quoting(value):
        return value
    if _unquote("{" + value + "}") == value:
        return "{" + value + "}"
    out, i = ["{"], 0
    while i < len(value):
        ch = value[i]
        if ch != "\\":
            out.append("\\" + ch if ch in '{}"#' else ch)
            i += 1
            continue
        j = i
        while j < len(value) and value[j] == "\\":
            j += 1
        count = j - i
        if j >= len(value):
            out.append("\\" * (2 * count))
        elif value[j] in '{}"#':
            out.append("\\" * (2 * count + 1) + value[j])
            j += 1
        else:
            out.append("\\" * count)
        i = j
    out.append("}")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Reading a comment


class _Reader:
    """Parses the joined ``#@`` text, naming the line of what it rejects."""

    def __init__(self, lines: Sequence[tuple[int, str]], where: str) -> None:
        self.lines = list(lines)
        self.where = where
        self.text = ""
        self.starts: list[int] = []
        parts = []
        offset = 0
        for _, text in self.lines:
            self.starts.append(offset)
            parts.append(text)
            offset += len(text) + 1
        self.text = " ".join(parts)

    def line(self, pos: int) -> int:
        return self.lines[max(bisect.bisect_right(self.starts, pos) - 1, 0)][0]

    def error(self, pos: int, message: str) -> ParseError:
        return ParseError(f"{self.where}: line {self.line(pos)}, in ML.NET's TextLoader schema comment: {message}")

    def settings(self, text: str, base: int, what: str, *, exact: bool = True) -> list[tuple[str, str, int]]:
        """``name=value`` and ``name+`` / ``name-`` items of ``text``, found at ``base`` of the joined
        text (``exact``: positions in ``text`` are positions there too; else all are ``base``)."""
        lexer = _Lexer(text)
        tokens = lexer.tokens()
        if lexer.error:
            raise self.error(base + lexer.pos if exact else base, f"{what} has an unmatched brace or an unclosed quote")
        items: list[tuple[str, str, int]] = []
        i = 0
        while i < len(tokens):
            token, at = tokens[i]
            pos = base + at if exact else base
            if i + 1 < len(tokens) and tokens[i + 1][0] == "=" and token not in ("=", "{", "}"):
                if i + 2 >= len(tokens) or tokens[i + 2][0] == "=":
                    raise self.error(pos, f"{quoted(token)} has no value after '='")
                items.append((token, tokens[i + 2][0], pos))
                i += 3
            elif len(token) > 1 and token[-1] in "+-" and token[0] not in "{}=":
                items.append((token[:-1], token[-1], pos))
                i += 1
            else:
                raise self.error(pos, f"{what}: expected name=value, name+ or name-, got {quoted(token)}")
        return items

    def nested(self, value: str, pos: int, what: str) -> list[tuple[str, str, int]]:
        """The items of a ``{...}`` value (errors name the line of ``pos``)."""
        inner = _unquote(value)
        if inner is None:
            raise self.error(pos, f"{what}: the {{ of {quoted(value)} is not closed")
        return self.settings(inner, pos, what, exact=False)

    def flag(self, value: str, pos: int, name: str) -> bool:
        text = value.lower()
        if text in ("+", "true"):
            return True
        if text in ("-", "false"):
            return False
        raise self.error(pos, f"{name} must be + or -, got {quoted(value)}")


def _int(text: str, low: int, high: int) -> int | None:
    """C#'s int.TryParse / ulong.TryParse: spaces around, an optional sign, digits; in range."""
    m = re.fullmatch(r"\s*([+-]?\d{1,30})\s*", text)
    if m is None:
        return None
    value = int(m.group(1))
    return value if low <= value <= high else None


def parse_comment(lines: Sequence[tuple[int, str]], where: str) -> LoaderSettings:
    """The settings of a schema comment, from its ``#@`` lines: (line number, text after ``#@``,
    stripped). ParseError, naming the line, for anything it cannot read."""
    r = _Reader(lines, where)
    lexer = _Lexer(r.text)
    tokens = lexer.tokens()
    first = lines[0][0]
    if not tokens or tokens[0][0].lower() not in ("textloader", "text"):
        raise r.error(0, "the #@ lines must hold TextLoader{...} (the settings of ML.NET's text loader)")
    if len(tokens) < 2 or not tokens[1][0].startswith("{") or lexer.error or not tokens[1][0].endswith("}"):
        raise r.error(len(r.text) - 1, "the TextLoader{ is not closed: the comment must end with a '#@ }' line")
    if len(tokens) > 2:
        raise r.error(tokens[2][1], f"unexpected {quoted(tokens[2][0])} after the closing brace")
    group, start = tokens[1]
    items = r.settings(group[1:-1], start + 1, "TextLoader")

    separator = "\t"
    has_header = False
    columns: dict[str, LoaderColumn] = {}
    for name, value, pos in items:
        key = name.lower()
        if key in ("col", "column"):
            if len(columns) >= MAX_COMMENT_COLUMNS:
                raise r.error(pos, f"more than {MAX_COMMENT_COLUMNS:,} columns")
            column = _column(r, value, pos)
            # As in ML.NET, a later column hides an earlier one of the same name (SaveAsText of a
            # view with hidden columns writes both): the last one is read, in its place.
            columns.pop(column.name, None)
            columns[column.name] = column
        elif key in ("sep", "separator"):
            separator = _separator(r, value, pos)
        elif key in ("header", "hasheader"):
            has_header = r.flag(value, pos, name)
        elif key in ("decimal", "decimalmarker"):
            if _unquote(value) != ".":
                raise r.error(pos, f"decimal marker {quoted(value)}: onnxpipe reads numbers with a '.' only")
        elif key in ("escapechar",):
            if _unquote(value) != '"':
                raise r.error(pos, f'escape character {quoted(value)}: onnxpipe reads quotes escaped as "" only')
        elif key in _IGNORED:
            continue
        else:
            raise r.error(pos, f"unknown setting {quoted(name)} (the TextLoader settings are col=, sep=, header+ ...)")
    if not columns:
        raise r.error(0, "no col= column")
    return LoaderSettings(separator, has_header, tuple(columns.values()), first, lines[-1][0])


# Settings that do not change what the columns hold, read and left alone: quoting (the loader's
# allow_quoting decides), sparse rows (which the loader does not read), the row count and size,
# threads, the header file (never opened), trimming, multi-line fields, NaN for empty reals.
_IGNORED = frozenset(
    {
        "quote",
        "allowquoting",
        "sparse",
        "allowsparse",
        "size",
        "inputsize",
        "trim",
        "trimwhitespace",
        "threads",
        "usethreads",
        "multilines",
        "readmultilines",
        "rows",
        "maxrows",
        "hf",
        "headerfile",
        "missingrealnan",
        "missingrealsasnans",
    }
)


def _separator(r: _Reader, value: str, pos: int) -> str:
    text = _unquote(value)
    if text is None or not text:
        raise r.error(pos, f"separator {quoted(value)} is empty or not closed")
    parts = [","] if text == "," else [p for p in text.split(",") if p] or [","]
    chars = set()
    for part in parts:
        ch = _SEPARATORS.get(part.lower(), part)
        if len(ch) != 1 or ch in '"\r\n\0':
            raise r.error(
                pos, f"separator {quoted(part)}: expected tab, space, comma, semicolon, bar, colon or one character"
            )
        chars.add(ch)
    if len(chars) > 1:
        raise r.error(pos, f"several separators ({quoted(text)}): onnxpipe reads files with one; pass separator=")
    return chars.pop()


def _kind(r: _Reader, text: str, pos: int, column: str) -> tuple[str | None, int | bool | None]:
    """ML.NET's TryParseDataKind: a type name, with ``[count]`` for a key."""
    key: int | bool | None = False
    if "[" in text:
        at = text.index("[")
        if not text.endswith("]"):
            raise r.error(pos, f"column {quoted(column)}: type {quoted(text)} opens a [ it does not close")
        key = _key_count(r, text[at + 1 : -1], pos, column)
        text = text[:at]
        if not text:
            return None, key
    kind = _KINDS.get(text.strip().lower())
    if kind is None:
        raise r.error(
            pos,
            f"column {quoted(column)}: unknown type {quoted(text)}; ML.NET's types are R4, R8, I1, I2, I4, I8, U1, U2, "
            "U4, U8, BL, TX (and TS, DT, DZ, UG), a key U4[count]",
        )
    return kind, key


def _key_count(r: _Reader, text: str, pos: int, column: str) -> int | None:
    """ML.NET's KeyCount: ``count``, the old ``min-max`` (min 0, count max + 1), or empty / ``0-*``
    for an unknown count."""
    if not text:
        return None
    low, dash, high = text.partition("-")
    if dash:
        if _int(low, 0, _UINT64) != 0:
            raise r.error(pos, f"column {quoted(column)}: key range [{text}] must start at 0")
        if high in ("", "*"):
            return None
        top = _int(high, 0, _UINT64 - 1)
        count = None if top is None else top + 1
    else:
        count = _int(text, 1, _UINT64)
    if count is None:
        raise r.error(pos, f"column {quoted(column)}: key count {quoted(text)} is not a number from 1 to 2**64-1")
    return count


def _range(r: _Reader, text: str, pos: int, column: str) -> SourceRange:
    """ML.NET's Range.TryParse: ``3``, ``1-4``, ``2-*`` (or ``2-``); ``2-**`` and ``~`` are ranges
    onnxpipe does not read."""
    bad = f"column {quoted(column)}: source {quoted(text)}"
    at = min((i for i in (text.find("-"), text.find("~")) if i >= 0), default=-1)
    if at < 0:
        index = _int(text, 0, _INT32 - 1)
        if index is None:
            raise r.error(pos, f"{bad} is not a file column index (0 or more)")
        return SourceRange(index, index)
    if text[at] == "~" or at == 0:
        raise r.error(pos, f"{bad}: ranges of 'all other' columns (~) are not read by onnxpipe; list the indices")
    low = _int(text[:at], 0, _INT32 - 1)
    rest = text[at + 1 :]
    if low is None:
        raise r.error(pos, f"{bad}: {quoted(text[:at])} is not a file column index (0 or more)")
    if rest in ("", "*"):
        return SourceRange(low, None, auto_end=True, vector=True)
    if rest == "**":
        raise r.error(pos, f"{bad} is a vector of varying length (onnxpipe reads fixed sizes); {_OTHER_COLUMNS}")
    high = _int(rest, 0, _INT32 - 1)
    if high is None or high < low:
        raise r.error(pos, f"{bad}: {quoted(rest)} is not an index from {low} on")
    return SourceRange(low, high, vector=True)


_OTHER_COLUMNS = "pass schema= or row_class= to read the other columns"


def _long_range(r: _Reader, value: str, pos: int, column: str) -> SourceRange:
    """``{min=1 max=4 vector=+}`` (and ``auto``, ``var``, ``other``), as ML.NET writes a range whose
    start it could not tell (``min=-1``, after a vector of varying length)."""
    low: int | None = None
    high: int | None = None
    flags = {"auto": False, "var": False, "other": False, "vector": False}
    names = {"autoend": "auto", "variableend": "var", "allother": "other", "forcevector": "vector"}
    for name, text, _ in r.nested(value, pos, f"column {quoted(column)}: src"):
        key = name.lower()
        key = names.get(key, key)
        if key == "min":
            low = _int(text, -_INT32, _INT32 - 1)
            if low is None:
                raise r.error(pos, f"column {quoted(column)}: src min {quoted(text)} is not a number")
        elif key == "max":
            high = _int(text, 0, _INT32 - 1)
            if high is None:
                raise r.error(pos, f"column {quoted(column)}: src max {quoted(text)} is not an index")
        elif key in flags:
            flags[key] = r.flag(text, pos, name)
        else:
            raise r.error(pos, f"column {quoted(column)}: unknown src setting {quoted(name)}")
    if low is None:
        raise r.error(pos, f"column {quoted(column)}: src has no min")
    if low < 0:
        raise r.error(
            pos,
            f"column {quoted(column)} has no known place in the row (min={low}: it follows a vector of varying "
            f"length); {_OTHER_COLUMNS}",
        )
    if flags["other"]:
        raise r.error(pos, f"column {quoted(column)}: ranges of 'all other' columns are not read by onnxpipe")
    if high is not None:
        if high < low:
            raise r.error(pos, f"column {quoted(column)}: src max {high} is before min {low}")
        return SourceRange(low, high, vector=flags["vector"] or high != low)
    if flags["auto"]:
        return SourceRange(low, None, auto_end=True, vector=True)
    if flags["var"]:
        raise r.error(
            pos, f"column {quoted(column)} is a vector of varying length (onnxpipe reads fixed sizes); {_OTHER_COLUMNS}"
        )
    return SourceRange(low, low, vector=flags["vector"])


def _column(r: _Reader, value: str, pos: int) -> LoaderColumn:
    kind: str | None = None
    key: int | bool | None = False
    sources: list[SourceRange] = []
    if value.startswith("{"):
        name: str | None = None
        items = r.nested(value, pos, "col")
        for setting, text, _ in items:
            if setting.lower() == "name":
                name = _unquote(text)
        if name is None or not name.strip():
            raise r.error(pos, f"col={quoted(value)} has no name=")
        for setting, text, _ in items:
            what = setting.lower()
            if what == "name":
                continue
            if what in ("type", "kind"):
                kind, type_key = _kind(r, text, pos, name)
                key = type_key if type_key is not False else key
            elif what in ("src", "source"):
                if text.startswith("{"):
                    sources.append(_long_range(r, text, pos, name))
                else:
                    sources += [_range(r, part, pos, name) for part in text.split(",")]
            elif what in ("key", "keycount"):
                inner = _unquote(text)
                if inner is not None and "=" in inner:  # {count=3}
                    counts = [v for k, v, _ in r.nested(text, pos, "key") if k.lower() == "count"]
                    inner = counts[-1] if counts else ""
                key = _key_count(r, inner or "", pos, name)
            else:
                raise r.error(pos, f"column {quoted(name)}: unknown setting {quoted(setting)}")
    else:
        parts = value.split(":")
        if len(parts) not in (2, 3) or not parts[0].strip():
            raise r.error(pos, f"col={quoted(value)}: expected Name:Type:Source or Name:Source")
        name = parts[0]
        if len(parts) == 3:
            kind, key = _kind(r, parts[1], pos, name)
        if not parts[-1]:
            raise r.error(pos, f"column {quoted(name)} has no source index")
        sources = [_range(r, part, pos, name) for part in parts[-1].split(",")]
    if not sources:
        raise r.error(pos, f"column {quoted(name)} has no src=")
    kind = kind or "R4"
    if key is not False:
        if kind not in _KEY_KINDS:
            raise r.error(pos, f"column {quoted(name)}: a key is U1, U2, U4 or U8, not {kind}")
        top = 2 ** _DTYPES[kind].bits - 1
        if key is not None and key > top:
            raise r.error(pos, f"column {quoted(name)}: {key:,} keys do not fit {kind} (at most {top:,})")
    return LoaderColumn(name, kind, tuple(sources), key, r.line(pos))
