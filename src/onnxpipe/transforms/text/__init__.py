"""Text transforms (``ctx.transforms.text``), with ML.NET's names, options and defaults.

One module per component family; each registers itself with ``catalog="transforms.text"``, so
``ctx.transforms.text.<name>`` finds it without an edit here:

* :mod:`~onnxpipe.transforms.text.normalize`: ``normalize_text``.
"""

from onnxpipe.transforms.text.normalize import CaseMode, TextNormalizingTransformer

__all__ = ["CaseMode", "TextNormalizingTransformer"]
