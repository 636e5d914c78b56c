"""Ingest seeded frames until killed, printing `ACK <id>` only after an ingest has returned (see test_crash)."""

from __future__ import annotations

import sys
from pathlib import Path

from helpers import frame_bytes

from astropolis.lake import Lake


def main() -> None:
    root, scratch, run = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    lake = Lake(root)
    print("READY", flush=True)
    index = 0
    while True:
        data = frame_bytes(seed=run * 100_000 + index, shape=(512, 512))  # 1 MiB of float32 pixels
        if index % 2:
            result = lake.ingest_bytes(data, name=f"run{run}-{index}.fits")
        else:  # the file path too: stream-copied and hashed in one pass
            source = scratch / f"run{run}-{index}.fits"
            source.write_bytes(data)
            result = lake.ingest(source)
        print(f"ACK {result.frame.id}", flush=True)
        index += 1


if __name__ == "__main__":
    main()
