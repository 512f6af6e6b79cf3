#!/usr/bin/env python3
"""Decode every golden file in wire/tests/data with Python's cbor2 (an independent,
standard CBOR implementation) and compare the result with the pinned JSON view next to it.

Usage: cbor2_check.py DATA_DIR [--bless]

JSON view: map keys become strings, byte strings become {"$bytes": "<hex>"}; everything
else (ints, floats, bools, null, text, arrays) maps directly.
"""
import json
import math
import pathlib
import sys

import cbor2


def to_json(v):
    if isinstance(v, dict):
        return {str(k): to_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_json(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return {"$bytes": v.hex()}
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    return v


def main():
    data = pathlib.Path(sys.argv[1])
    bless = "--bless" in sys.argv[2:]
    files = sorted(data.glob("*.cbor"))
    if not files:
        print(f"no golden files in {data}", file=sys.stderr)
        return 1
    failures = 0
    for f in files:
        decoded = to_json(cbor2.loads(f.read_bytes()))
        expected_path = f.with_suffix(".json")
        text = json.dumps(decoded, indent=1, sort_keys=True) + "\n"
        if bless:
            expected_path.write_text(text)
            continue
        if not expected_path.exists():
            print(f"{f.name}: no {expected_path.name}", file=sys.stderr)
            failures += 1
            continue
        if json.loads(expected_path.read_text()) != json.loads(text):
            print(f"{f.name}: cbor2 decodes it differently from {expected_path.name}:\n{text}", file=sys.stderr)
            failures += 1
    print(f"cbor2 {cbor2.__version__ if hasattr(cbor2, '__version__') else ''} checked {len(files)} golden files, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
