"""The ceiling that torch's CPU matrix-vector products put on batch-1 decode of SmolLM2-135M.

A batch-1 decode step multiplies one row by every weight matrix of the model once: 7 per layer (q, k, v, o,
gate, up, down) and the LM head. This bench builds matrices of SmolLM2-135M's shapes (random values: the
time does not depend on them), one set per layer as in the model, so that every step reads them from memory
and not from a cache, and times one step's products alone, with nothing else of the model around them:

- float32, each weight [out, in] row-major: the layout of `torch.nn.Linear`, what fslm runs;
- float32, each weight stored column-major (the same `F.linear` call on `weight.t().contiguous().t()`);
- float32, the faster layout of the two for each shape;
- bfloat16, row-major.

For each: milliseconds per step, the bytes read over that time, and the tokens/s a decode could reach if the
products were all it did, as a share of the bandwidth bound of `bench/runtime_bandwidth.py` (the best of
reading and copying a --gib GiB tensor on the same threads, over the weights' bytes for the dtype).

Usage: python bench/runtime_gemv.py [--steps 5] [--gib 1] [--threads 2]
Writes bench/results/runtime_gemv.md.
"""

import argparse

import torch
import torch.nn.functional as F
from common import record, timed_runs
from runtime_bandwidth import bandwidth

LAYERS = 30
HIDDEN, KV, INTERMEDIATE, VOCAB = 576, 192, 1536, 49152
LAYER_SHAPES = {
    "q_proj": (HIDDEN, HIDDEN),
    "k_proj": (KV, HIDDEN),
    "v_proj": (KV, HIDDEN),
    "o_proj": (HIDDEN, HIDDEN),
    "gate_proj": (INTERMEDIATE, HIDDEN),
    "up_proj": (INTERMEDIATE, HIDDEN),
    "down_proj": (HIDDEN, INTERMEDIATE),
}


def weights(dtype: torch.dtype) -> dict[str, list[torch.Tensor]]:
    """Each layer shape's matrices, one per layer, and the LM head's (tied to the embedding: one matrix)."""
    sets = {
        name: [torch.randn(shape, dtype=dtype) for _ in range(LAYERS)] for name, shape in LAYER_SHAPES.items()
    }
    sets["lm_head"] = [torch.randn((VOCAB, HIDDEN), dtype=dtype)]
    return sets


def column_major(sets: dict[str, list[torch.Tensor]]) -> dict[str, list[torch.Tensor]]:
    return {name: [matrix.t().contiguous().t() for matrix in matrices] for name, matrices in sets.items()}


def seconds_per_shape(sets: dict[str, list[torch.Tensor]], steps: int) -> dict[str, float]:
    """Per shape, the best over `steps` of one step's products with all of its matrices."""
    best: dict[str, float] = {}
    for name, matrices in sets.items():
        row = torch.randn(1, matrices[0].shape[1], dtype=matrices[0].dtype)

        def step(row: torch.Tensor = row, matrices: list[torch.Tensor] = matrices) -> None:
            for matrix in matrices:
                F.linear(row, matrix)

        best[name] = min(timed_runs(step, steps))
    return best


def figures(system: str, seconds: float, nbytes: int, bound_bytes_per_second: float) -> dict:
    bound = bound_bytes_per_second / nbytes
    return {
        "system": system,
        "ms per step": round(1000 * seconds, 2),
        "GB/s": round(nbytes / seconds / 1e9, 1),
        "tokens/s, products only": round(1 / seconds, 1),
        "bound tokens/s": round(bound, 1),
        "share of bound": round(1 / seconds / bound, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per shape, best kept (5)")
    parser.add_argument("--gib", type=float, default=1.0, help="size of the bandwidth test's tensor (1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    memory = max(bandwidth(args.gib, 3))

    rows = []
    float32 = weights(torch.float32)
    nbytes = sum(matrix.numel() * 4 for matrices in float32.values() for matrix in matrices)
    row_major = seconds_per_shape(float32, args.steps)
    col_major = seconds_per_shape(column_major(float32), args.steps)
    del float32
    best = {name: min(row_major[name], col_major[name]) for name in row_major}
    rows.append(figures("float32, row-major (nn.Linear)", sum(row_major.values()), nbytes, memory))
    rows.append(figures("float32, column-major", sum(col_major.values()), nbytes, memory))
    rows.append(figures("float32, faster layout per shape", sum(best.values()), nbytes, memory))
    bfloat16 = weights(torch.bfloat16)
    rows.append(
        figures(
            "bfloat16, row-major", sum(seconds_per_shape(bfloat16, args.steps).values()), nbytes // 2, memory
        )
    )
    per_shape = "; ".join(
        f"{name} {1000 * row_major[name]:.2f} / {1000 * col_major[name]:.2f}" for name in row_major
    )
    command = f"python bench/runtime_gemv.py --steps {args.steps} --gib {args.gib} --threads {args.threads}"
    notes = (
        f"Command: `{command}`. One batch-1 decode step's matrix-vector products for SmolLM2-135M's "
        f"shapes ({LAYERS} layers x 7 matrices and the tied LM head, a separate matrix per layer so that "
        "each step reads them from memory), timed alone: `F.linear` of one row, the best of the steps per "
        f"shape. Bound: the best of reading and copying a {args.gib} GiB tensor ({memory / 1e9:.1f} GB/s) "
        "over the weights' bytes. A decode step does more than these products (norms, attention, the KV "
        "cache, sampling), so a real decode is slower than 'tokens/s, products only'. Per shape, float32 "
        f"ms per step row-major / column-major: {per_shape}."
    )
    path = record("runtime_gemv", rows, notes)
    for row in rows:
        print(row)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
