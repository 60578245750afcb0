"""Text transforms (``ctx.transforms.text``), with ML.NET's names, options and defaults.

One module per component family; each registers itself with ``catalog="transforms.text"``, so
``ctx.transforms.text.<name>`` finds it without an edit here:

* :mod:`~onnxpipe.transforms.text.normalize`: ``normalize_text``.
* :mod:`~onnxpipe.transforms.text.tokenize`: ``tokenize_into_words``, ``tokenize_into_characters_as_keys``.
* :mod:`~onnxpipe.transforms.text.stop_words`: ``remove_default_stop_words``, ``remove_stop_words``.
* :mod:`~onnxpipe.transforms.text.ngrams`: ``produce_ngrams``, ``produce_word_bags``,
  ``produce_hashed_ngrams``, ``produce_hashed_word_bags`` (sparse vector outputs).
* :mod:`~onnxpipe.transforms.text.featurize`: ``featurize_text`` (ML.NET's FeaturizeText).
* :mod:`~onnxpipe.transforms.text.embedding`: ``apply_word_embedding``.
* :mod:`~onnxpipe.transforms.text.lda`: ``latent_dirichlet_allocation`` (fitted with scikit-learn:
  ``pip install 'onnxpipe[text]'``).
"""

from onnxpipe.transforms.text.normalize import CaseMode, TextNormalizingTransformer

__all__ = ["CaseMode", "TextNormalizingTransformer"]
