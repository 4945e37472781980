"""Devices: a handle's `device` and `dtype: auto` made concrete; devices torch cannot see are user errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fslm.errors import FslmError
from fslm.finetune.model import load_base
from fslm.runtime import GenerationParams, GenerationRequest, ModelRef, Runtime
from fslm.runtime.device import resolve_device, resolve_dtype

NO_CUDA = not torch.cuda.is_available()


def test_auto_dtype_is_bfloat16_on_cuda_and_float32_elsewhere() -> None:
    assert resolve_dtype("auto", torch.device("cuda")) == "bfloat16"
    assert resolve_dtype("auto", torch.device("cpu")) == "float32"
    assert resolve_dtype("float16", torch.device("cpu")) == "float16"


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "CPU", ""])
def test_a_malformed_device_is_refused(device: str) -> None:
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda, cuda:N or mps"):
        ModelRef("x", device=device)


@pytest.mark.skipif(not NO_CUDA, reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_a_user_error(tiny_model: Path) -> None:
    for name in ("cuda", "cuda:1"):
        with pytest.raises(FslmError, match="sees no CUDA GPU"):
            resolve_device(name)
    runtime = Runtime({"tiny": ModelRef(str(tiny_model), device="cuda")})
    with pytest.raises(FslmError, match="sees no CUDA GPU"):
        runtime.generate([GenerationRequest(model="tiny", prompt="Hi")])
    with pytest.raises(FslmError, match="sees no CUDA GPU"):
        load_base(tiny_model, "float32", "cuda")


def test_cpu_and_auto_share_a_base_on_a_cpu_machine(tiny_model: Path) -> None:
    runtime = Runtime({"a": ModelRef(str(tiny_model), device="cpu"), "b": ModelRef(str(tiny_model))})
    base = runtime.base_for("a")
    assert base.device.type == "cpu" and base.model.dtype == torch.float32
    if NO_CUDA and not torch.backends.mps.is_available():
        assert runtime.base_for("b") is base
    params = GenerationParams(max_new_tokens=3)
    assert runtime.generate([GenerationRequest(model="a", prompt="Hi", params=params)])[0].completion_tokens


# `meta` is no device a user can name, but every machine has it and it is neither `auto`'s choice nor where
# transformers loads a model, so a device that is not passed on fails here even on a CPU-only machine.
ON_THIS_MACHINE = (
    ["cpu", "meta"] + ["cuda"] * torch.cuda.is_available() + ["mps"] * torch.backends.mps.is_available()
)


@pytest.mark.parametrize("device", ON_THIS_MACHINE)
def test_fine_tuning_loads_on_the_chosen_device(tiny_model: Path, device: str) -> None:
    _, model = load_base(tiny_model, "float32", device)
    assert {parameter.device.type for parameter in model.parameters()} == {device}


@pytest.mark.slow
@pytest.mark.skipif(not NO_CUDA, reason="this machine has a CUDA GPU")
def test_running_a_pipeline_on_a_missing_gpu_is_exit_2(tmp_path: Path, tiny_model: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        f"models:\n  m: {{source: {tiny_model}, device: cuda}}\nstages:\n  a: {{model: m, prompt: x}}\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fslm.cli.main",
            "run",
            str(path),
            "hi",
            "--store",
            str(tmp_path / "r.sqlite"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "sees no CUDA GPU" in done.stderr


@pytest.mark.slow
def test_a_bad_device_in_a_pipeline_file_is_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "models:\n  m: {source: smollm2-135m-instruct, device: gpu}\nstages:\n  a: {model: m, prompt: x}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "fslm.cli.main", "validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{path}:2:" in done.stderr and "device" in done.stderr
