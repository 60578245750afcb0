"""KServe V2 gRPC protocol: ``grpc_predict_v2.proto`` (package ``inference``, service
``GRPCInferenceService``), copied unchanged from kserve/kserve ``docs/predict-api/v2/grpc_predict_v2.proto``
at commit aaac4e294dae2c7b1aa1886447793f3aa1c30912 (Apache License 2.0, header kept in the file),
and the Python modules grpcio-tools 1.85.1 generated from it (see the header of
``grpc_predict_v2_pb2.py`` for the command and the hand edits). The server (``_grpc.py``) uses only
``grpc_predict_v2_pb2``; ``grpc_predict_v2_pb2_grpc`` (client stub, needs grpcio >= 1.85.1) is kept
for users who want a stub of their own."""
