"""An MLServer runtime scoring an ONNX model with ONNX Runtime: the peer in bench/serve.py (MLServer
ships no ONNX runtime; this is the few lines a user would write). Loaded by MLServer, not onnxpipe."""

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxModel(MLModel):  # type: ignore[misc]
    async def load(self) -> bool:
        options = ort.SessionOptions()
        self._session = ort.InferenceSession(self.settings.parameters.uri, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        outputs = self._session.run(None, {self._input: x})
        names = [o.name for o in self._session.get_outputs()]
        encoded = [NumpyCodec.encode_output(name, value) for name, value in zip(names, outputs, strict=True)]
        return InferenceResponse(model_name=self.name, outputs=encoded)
