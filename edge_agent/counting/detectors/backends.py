"""Runtimes that execute the detector's ONNX model: OpenCV's dnn module or onnxruntime.

Both take the same input blob and return the same outputs (in any order: the decoder matches them by
shape). OpenCV's dnn is always there; onnxruntime is an optional extra (``pip install '.[onnxruntime]'``)
that runs NanoDet-m about three times faster than OpenCV 4.x, which is what Raspberry Pi OS ships.
``auto`` takes onnxruntime when it can be imported.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy.typing as npt

BackendName = Literal["auto", "opencv", "onnxruntime"]
BACKENDS: tuple[BackendName, ...] = ("auto", "opencv", "onnxruntime")
ARENA_SAME_AS_REQUESTED = 1  # onnxruntime's ArenaExtendStrategy::kSameAsRequested (0 is kNextPowerOfTwo)


class ModelError(RuntimeError):
    """The model file is missing, is not the expected detector, or its runtime is not installed."""


class InferenceBackend(Protocol):
    name: str

    def run(self, blob: npt.NDArray[Any]) -> Sequence[npt.NDArray[Any]]:
        """The model's outputs for one NCHW float32 blob."""
        ...


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def resolve(name: str) -> Literal["opencv", "onnxruntime"]:
    """The backend ``name`` stands for (``auto`` decided by what is installed); a clear error otherwise."""
    if name == "auto":
        return "onnxruntime" if onnxruntime_available() else "opencv"
    if name == "opencv":
        return "opencv"
    if name == "onnxruntime":
        if not onnxruntime_available():
            raise ModelError(
                "backend onnxruntime is not installed (pip install 'neighbourhood-hub[onnxruntime]'), "
                "or choose backend opencv or auto"
            )
        return "onnxruntime"
    raise ModelError(f"unknown backend {name!r} (expected one of {', '.join(BACKENDS)})")


def open_backend(name: str, model_path: Path) -> InferenceBackend:
    if not model_path.is_file():
        raise ModelError(f"model file {model_path} does not exist")
    if resolve(name) == "onnxruntime":
        return OnnxRuntimeBackend(model_path)
    return OpenCvBackend(model_path)


class OpenCvBackend:
    name = "opencv"

    def __init__(self, model_path: Path) -> None:
        try:
            self._net = cv2.dnn.readNet(str(model_path))
        except cv2.error as exc:
            raise ModelError(f"cannot load model {model_path}: {str(exc).strip().splitlines()[-1]}") from None
        self._outputs = list(self._net.getUnconnectedOutLayersNames())

    def run(self, blob: npt.NDArray[Any]) -> Sequence[npt.NDArray[Any]]:
        self._net.setInput(blob)
        outs: Sequence[npt.NDArray[Any]] = self._net.forward(self._outputs)
        return outs


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, model_path: Path) -> None:
        import onnxruntime as ort  # optional: imported only when chosen

        options = ort.SessionOptions()
        # One setting for both runtimes: as many threads as OpenCV is allowed (cv2.setNumThreads).
        options.intra_op_num_threads = max(1, cv2.getNumThreads())
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle workers sleep instead of spinning for the next operator: with spinning, `edge-agent count`
        # burnt twice the CPU per frame (the second thread waits busily) and ran slower on a busy machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Tensors come from the process's arena, which grows by what is asked instead of doubling
        # (_register_arena: about 3 MiB less peak memory of `edge-agent count`, the same speed).
        _register_arena(ort)
        options.add_session_config_entry("session.use_env_allocators", "1")
        # Memory (docs/counting.md, "Detector backends"): the memory pattern plans one block for all of a
        # run's intermediate tensors and keeps it; without it peak memory of `edge-agent count` is 4 MiB
        # lower at the same speed. The arena stays on: without it the C library's heap grows and scatters
        # (5-30 MiB more, different each run). Graph optimisation levels made no difference to memory.
        options.enable_mem_pattern = False
        # The exported model lists its weights as graph inputs too; onnxruntime warns about each of them
        # (hundreds of lines, harmless: measured no slower once stripped). Errors still show.
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise ModelError(f"cannot load model {model_path}: {str(exc).strip().splitlines()[-1]}") from None
        inputs = [i.name for i in self._session.get_inputs()]
        if len(inputs) < 1:
            raise ModelError(f"cannot load model {model_path}: it has no input")
        self._input = inputs[0]

    def run(self, blob: npt.NDArray[Any]) -> Sequence[npt.NDArray[Any]]:
        outs: Sequence[npt.NDArray[Any]] = self._session.run(None, {self._input: blob})
        return outs


@functools.cache
def _register_arena(ort: Any) -> None:
    """Once per process: the CPU arena shared by its sessions extends by the size requested
    (``kSameAsRequested``), not to the next power of two, which left megabytes of it never used."""
    memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    # (max memory, extend strategy, initial chunk, max dead bytes per chunk); 0 and -1 keep the defaults.
    # The positional form: onnxruntime 1.16 (the oldest version allowed) has it too.
    ort.create_and_register_allocator(memory, ort.OrtArenaCfg(0, ARENA_SAME_AS_REQUESTED, -1, -1))
