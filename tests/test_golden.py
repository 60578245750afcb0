"""Golden files: a small saved model per component type, per saved-model format version.

Each was saved by the onnxpipe of its format version (``tests/golden/capture.py`` writes them
from the conformance suite) with the input it was checked on and the output it gave. Loading
and scoring them here means a change that breaks loading old files fails CI.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import onnxpipe as op
from onnxpipe.core import Transformer
from onnxpipe.persistence import FORMAT_VERSION, load_model, model_from_bytes, model_to_bytes, registered_components
from onnxpipe.testing import assert_views_equal

GOLDEN = Path(__file__).parent / "golden"
FILES = sorted(GOLDEN.glob("v*/*.zip"))
# Types that are not saved on their own: enums, the chain, and types only format 1 held.
NOT_ALONE = {"DType", "NormFunction", "TransformerChain", "_KeyMapper", "_Statistic", "_MulticlassModel"}
# custom_mapping steps are saved by a contract name registered by the user's code.
NEEDS_USER_CODE = {"CustomMappingTransformer"}


def _read(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FILES])
def test_golden_file_loads_and_scores_as_when_saved(path: Path) -> None:
    model, schema = load_model(path)
    inputs = path.with_name(path.stem + ".input.arrow")
    if not inputs.exists():  # its input names image files of the run that saved it
        model.output_schema(schema)
        return
    ctx = op.MLContext()
    data = ctx.data.load_from_arrow(_read(inputs))
    assert data.schema == schema
    expected = ctx.data.load_from_arrow(_read(path.with_name(path.stem + ".expected.arrow")))
    # Key columns' values are compared by scoring, not by schema: files older than key values on the schema lack them.
    assert_views_equal(model.transform(data), expected, path.stem, ignore_key_values=True)
    # Saved again, it is in the current format and loads to the same model.
    again, _ = model_from_bytes(model_to_bytes(model, schema))
    assert_views_equal(again.transform(data), expected, f"{path.stem} re-saved", ignore_key_values=True)


def test_every_component_type_has_a_golden_file_of_the_current_format() -> None:
    have = {p.stem for p in GOLDEN.glob(f"v{FORMAT_VERSION}/*.zip")}
    own = {  # the types a saved model holds: fitted transformers, not estimators
        name
        for name, cls in registered_components().items()
        if cls.__module__.startswith("onnxpipe.") and isinstance(cls, type) and issubclass(cls, Transformer)
    }
    missing = own - have - NOT_ALONE - NEEDS_USER_CODE
    assert not missing, (
        f"no golden file for {sorted(missing)}: run `PYTHONPATH=. pytest -p tests.golden.capture` to write "
        f"tests/golden/v{FORMAT_VERSION}/"
    )
