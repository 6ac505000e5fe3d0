"""Exports (ONNX, the deploy treatment, the stakeholder report) and the runtimes latency is
measured in."""

RUNTIMES = ("torch", "deploy", "onnxruntime")
RUNTIME_WORDS = {  # what each runtime is, in a few words
    "torch": "PyTorch, as the model is",
    "deploy": "PyTorch under the deploy treatment",
    "onnxruntime": "onnxruntime (BatchNorm folded, all graph optimisations)",
}
