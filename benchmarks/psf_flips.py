"""Which single-byte flips of a PSFEx model the fetch checks find without an MD5.

Usage (from the repository root)::

    .venv/bin/python benchmarks/psf_flips.py [--model tests/data/des_example.psf] [--trials 2000]

Each trial flips one random byte (XOR with a random non-zero value) of the model's PSF_MASK
data, writes the file and runs ``inputs.fetch.verify_fits(path, "psf")``, the check every
downloaded (and every already present) PSFEx model gets. Prints, per byte of the big-endian
float32 (0 = sign and exponent, 1..3 = mantissa), the share of flips found and by which check.
Without an MD5 the rest is undetectable: that is what the manifest's MD5 is for.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import fitsio  # noqa: E402
import numpy as np  # noqa: E402

from balrog_runner.inputs import fetch  # noqa: E402


def _reason(exc: Exception) -> str:
    text = str(exc)
    for key, label in (("non-finite", "non-finite"), ("not normalised", "flux"), ("peak", "centre"),
                       ("corner", "domain")):
        if key in text:
            return label
    return "other"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "tests" / "data" / "des_example.psf")
    parser.add_argument("--trials", type=int, default=2000, help="flips per byte position (default 2000)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    raw = bytearray(args.model.read_bytes())
    with fitsio.FITS(str(args.model)) as f:
        info = f[1].get_info()
    start, end = int(info["data_start"]), int(info["data_end"])
    fetch.verify_fits(args.model, "psf")  # the clean model passes
    rng = np.random.default_rng(args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flipped.psf"
        for byte in range(4):
            found: Counter[str] = Counter()
            for _ in range(args.trials):
                data = bytearray(raw)
                k = start + 4 * int(rng.integers((end - start) // 4)) + byte
                data[k] ^= int(rng.integers(1, 256))
                path.write_bytes(bytes(data))
                try:
                    fetch.verify_fits(path, "psf")
                except fetch.CorruptFile as exc:
                    found[_reason(exc)] += 1
            rows.append((byte, sum(found.values()), found))
    print(f"\nSingle-byte flips in the PSF_MASK of {args.model.name} ({(end - start) // 4} floats), "
          f"{args.trials} per byte position")
    print(f"{'byte of float32':<16} {'found':>7}  by check")
    for byte, n, found in rows:
        what = "sign+exponent" if byte == 0 else "mantissa"
        detail = ", ".join(f"{k} {v}" for k, v in sorted(found.items())) or "-"
        print(f"{byte} ({what:<13}) {n / args.trials:7.1%}  {detail}")
    total = sum(n for _, n, _ in rows) / (4 * args.trials)
    print(f"{'all':<16} {total:7.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
