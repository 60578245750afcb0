"""Text transforms (``ctx.transforms.text``), with ML.NET's names and defaults.

``normalize_text`` is ML.NET's TextNormalizingEstimator: change the case, remove diacritical
marks, punctuation and numbers of every value of a text column (scalar or vector), one character
at a time exactly as ML.NET's ``NormalizeSrc`` does: punctuation is .NET's ``char.IsPunctuation``
(the ``P*`` categories), numbers ``char.IsNumber`` (``Nd``, ``Nl``, ``No``); without diacritics,
the combining marks ML.NET lists (U+0300-036F and its Hebrew and Arabic ranges) are dropped and
the precomposed Latin, Greek and Cyrillic letters of ML.NET's table become their base letters
(``é`` -> ``e``; letters outside the table, e.g. Vietnamese ``ữ``, stay as they are, as in
ML.NET; there is no Unicode decomposition). Case changes map one character to one character
(.NET's ``ToLowerInvariant`` / ``ToUpperInvariant``): ``ß`` stays ``ß`` in upper case.

Export: like ML.NET, only a case change is exportable (diacritics, punctuation and digits all
kept): ONNX's ``StringNormalizer`` has no character-class removal. The export runs in the
``C.UTF-8`` locale, which every Linux has (``en_US.UTF-8``, ONNX Runtime's default, often is not
generated).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from onnxpipe import _validation
from onnxpipe.core import TrivialEstimator, component
from onnxpipe.data._convert import ColumnValues
from onnxpipe.schema import Column, DType, Schema, TensorType
from onnxpipe.transforms.conversion import OneToOneStep, elementwise

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = ["CaseMode", "TextNormalizingTransformer"]

CaseMode = Literal["lower", "upper", "none"]
_CASE_MODES = ("lower", "upper", "none")
_LOCALE = "C.UTF-8"


@functools.cache
def _one_to_one(change: str) -> dict[int, str]:
    """A translation table for a case change that keeps one character per character."""
    table: dict[int, str] = {}
    for code in range(0x10000):
        c = chr(code)
        changed = c.lower() if change == "lower" else c.upper()
        if changed != c and len(changed) == 1:
            table[code] = changed
    return table


# ML.NET's table of letters combined with diacritics (TextNormalizing.cs, "from Office NL team"):
# each pair is the combined letter, then its letter without diacritics.
_COMBINED_DIACRITICS = (
    "ÀAÁAÂAÃAÄAÅAÇCÈEÉEÊEËEÌIÍIÎIÏIÑNÒOÓOÔOÕOÖOÙUÚUÛUÜUÝYàaáaâaãaäaåaçcèeéeêeëeìiíiîiïiñnòoóoôoõoöoùu"
    "úuûuüuýyÿyĀAāaĂAăaĄAąaĆCćcĈCĉcĊCċcČCčcĎDďdĒEēeĔEĕeĖEėeĘEęeĚEěeĜGĝgĞGğgĠGġgĢGģgĤHĥhĨIĩiĪIīiĬIĭiĮI"
    "įiİIĴJĵjĶKķkĹLĺlĻLļlĽLľlŃNńnŅNņnŇNňnŌOōoŎOŏoŐOőoŔRŕrŖRŗrŘRřrŚSśsŜSŝsŞSşsŠSšsŢTţtŤTťtŨUũuŪUūuŬUŭu"
    "ŮUůuŰUűuŲUųuŴWŵwŶYŷyŸYŹZźzŻZżzŽZžzƠOơoƯUưuǍAǎaǏIǐiǑOǒoǓUǔuǕUǖuǗUǘuǙUǚuǛUǜuǞAǟaǠAǡaǢÆǣæǦGǧgǨKǩkǪO"
    "ǫoǬOǭoǮƷǯʒǰjǴGǵgǸNǹnǺAǻaǼÆǽæǾØǿøȀAȁaȂAȃaȄEȅeȆEȇeȈIȉiȊIȋiȌOȍoȎOȏoȐRȑrȒRȓrȔUȕuȖUȗuȘSșsȚTțtȞHȟhȦAȧa"  # noqa: RUF001 - the letters are the data
    "ȨEȩeȪOȫoȬOȭoȮOȯoȰOȱoȲYȳy"
    "ΆΑΈΕΉΗΊΙΌΟΎΥΏΩΐιΪΙΫΥάαέεήηίιΰυϊιϋυόούυώωϓϒϔϒ"
    "ЀЕЁЕЃГЇІЌКЍИЎУЙИйиѐеёеѓгїіќкѝиўуѶѴѷѵӁЖӂжӐАӑаӒАӓаӖЕӗеӚӘӛәӜЖӝжӞЗӟзӢИӣиӤИӥиӦОӧоӪӨӫөӬЭӭэӮУӯуӰУӱуӲУӳу"
    "ӴЧӵчӸЫӹы"
)
_WITHOUT_DIACRITICS = dict(zip(_COMBINED_DIACRITICS[::2], _COMBINED_DIACRITICS[1::2], strict=True))


def _is_combining_diacritic(code: int) -> bool:
    """ML.NET's ``IsCombiningDiacritic``: basic, Hebrew and Arabic combining marks."""
    return (
        0x0300 <= code <= 0x036F
        or 0x0591 <= code <= 0x05BD
        or code in (0x05C1, 0x05C2, 0x05C4, 0x05C5, 0x05C7)
        or 0x0610 <= code <= 0x0615
        or 0x064C <= code <= 0x065E
        or code == 0x0670
    )


@functools.cache
def _translation(case_mode: str, keep_diacritics: bool, keep_punctuations: bool, keep_numbers: bool) -> dict[int, Any]:
    """One ``str.translate`` table doing ML.NET's per-character normalization (BMP characters;
    .NET sees others as surrogate pairs, which it never changes)."""
    lower, upper = _one_to_one("lower"), _one_to_one("upper")
    table: dict[int, Any] = {}
    for code in range(0x10000):
        category = unicodedata.category(chr(code))
        if (not keep_punctuations and category.startswith("P")) or (
            not keep_numbers and category in ("Nd", "Nl", "No")
        ):
            table[code] = None
            continue
        if not keep_diacritics and _is_combining_diacritic(code):
            table[code] = None
            continue
        ch = chr(code)
        if not keep_diacritics:
            ch = _WITHOUT_DIACRITICS.get(ch, ch)
        if case_mode != "none":
            ch = (lower if case_mode == "lower" else upper).get(ord(ch), ch)
        if ch != chr(code):
            table[code] = ch
    return table


@component("normalize_text", catalog="transforms.text")
class TextNormalizingTransformer(OneToOneStep, TrivialEstimator["TextNormalizingTransformer"]):
    """Change case (``case_mode``: ``"lower"``, ``"upper"`` or ``"none"``) and remove diacritical
    marks (unless ``keep_diacritics``), punctuation (unless ``keep_punctuations``) and digits
    (unless ``keep_numbers``) in a text column, scalar or vector (ML.NET's ``NormalizeText``).

    Exportable to ONNX when diacritics, punctuation and numbers are all kept (a case change only).
    """

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        case_mode: CaseMode = "lower",
        keep_diacritics: bool = False,
        keep_punctuations: bool = True,
        keep_numbers: bool = True,
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self.case_mode = _validation.choice(case_mode, "case_mode", self.step_name, _CASE_MODES)
        self.keep_diacritics = _validation.boolean(keep_diacritics, "keep_diacritics", self.step_name)
        self.keep_punctuations = _validation.boolean(keep_punctuations, "keep_punctuations", self.step_name)
        self.keep_numbers = _validation.boolean(keep_numbers, "keep_numbers", self.step_name)

    def _params(self) -> tuple[object, ...]:
        return (
            *super()._params(),
            self.case_mode,
            self.keep_diacritics,
            self.keep_punctuations,
            self.keep_numbers,
        )

    onnx_unexportable_reason = (
        "ONNX's StringNormalizer only changes case; pass keep_diacritics=True, keep_punctuations=True and "
        "keep_numbers=True to export (ML.NET exports the same subset)"
    )

    def _check(self, schema: Schema) -> TensorType:
        return self._input_tensor(schema, lambda t: t.dtype is DType.STRING, "text")

    def output_schema(self, input_schema: Schema) -> Schema:
        ct = self._check(input_schema)
        slots = input_schema[self.input_column_name].slot_names
        return input_schema.with_columns(Column(self.output_column_name, TensorType(DType.STRING, ct.shape), slots))

    def normalize(self, text: str) -> str:
        """One value, normalized."""
        table = _translation(self.case_mode, self.keep_diacritics, self.keep_punctuations, self.keep_numbers)
        return text.translate(table)

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        self._check(input_schema)

        def normalized(flat: np.ndarray) -> np.ndarray:
            return np.array([self.normalize(str(v)) for v in flat.tolist()], dtype=object)

        return {self.output_column_name: elementwise(columns[self.input_column_name], normalized)}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        self._check(input_schema)
        if not (self.keep_diacritics and self.keep_punctuations and self.keep_numbers):
            super().export_onnx(ctx, input_schema)  # raises, naming this step and why
        x = ctx.value(self.input_column_name)
        # StringNormalizer takes [C] or [1, C]: flatten every row's values, normalize, restore the shape.
        flat = ctx.add_node("Reshape", [x, ctx.add_initializer(np.array([-1], np.int64), "flat")])[0]
        action = {"lower": "LOWER", "upper": "UPPER", "none": "NONE"}[self.case_mode]
        (normalized,) = ctx.add_node("StringNormalizer", [flat], case_change_action=action, locale=_LOCALE)
        shape = ctx.add_node("Shape", [x])[0]
        ctx.set_value(self.output_column_name, ctx.add_node("Reshape", [normalized, shape])[0])
