"""GGUF → safetensors conversion, done once per file and cached."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from fslm.errors import ModelNotFoundError
from fslm.runtime.cache import SOURCE_RECORD, conversion_done, converted_dir_for
from fslm.runtime.messages import one_line

_conversion_lock = threading.Lock()  # one conversion at a time in this process; each takes GBs of memory


def converted_gguf(
    name: str, gguf_path: Path, source: str, cache_override: Path | None = None, *, force: bool = False
) -> Path:
    """A Hugging Face directory holding `gguf_path` dequantized to safetensors, converting it on first use;
    `force` converts it again, replacing what the cache holds (a damaged entry too)."""
    target = converted_dir_for(name, gguf_path, cache_override)
    if not force and conversion_done(target):
        return target
    with _conversion_lock:
        if force:
            shutil.rmtree(target, ignore_errors=True)
        elif conversion_done(target):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        # Convert into a temp dir on the same filesystem and rename at the end, so a killed conversion never
        # leaves a directory that looks complete.
        temp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
        try:
            _convert(gguf_path, temp)
            record = {"source": source, "gguf": str(gguf_path.resolve()), "converted_at": time.time()}
            (temp / SOURCE_RECORD).write_text(json.dumps(record, indent=2))
            try:
                os.rename(temp, target)
            except OSError:
                # Another process finished the same conversion first; theirs is as good as ours.
                if not (target / SOURCE_RECORD).is_file():
                    raise
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    return target


def _convert(gguf_path: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, filename = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=filename)
        model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=filename)
    except (OSError, ValueError) as error:
        raise ModelNotFoundError(f"Could not read GGUF file {gguf_path}: {one_line(error)}") from error
    # The dequantized weights are plain tensors now; without these, save_pretrained refuses a "gguf" model.
    # (torch types Module.__setattr__ for tensors and modules, and transformers declares no `hf_quantizer`.)
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
