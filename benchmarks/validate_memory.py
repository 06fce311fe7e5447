"""Peak memory of `mscbayes validate` on a large valid fate table (issue 23: "validate in chunks so memory
stays bounded, target <= 3x the file size").

The table repeats the valid rows of tests/fixtures/fate_clean.csv with the subject ids made unique per copy
(so the key and the per-subject rules still hold), until the file reaches --mb megabytes; it is written to a
temporary folder and deleted afterwards (never committed). Peak RSS is GNU time's "Maximum resident set
size" of the whole `mscbayes validate` process; the import cost is that of validating the 10-row template.

    python benchmarks/validate_memory.py --mb 50
    python benchmarks/validate_memory.py --mb 50 --keep /tmp/big_fate.csv   # keep the file

Prints one line per command: MB file, rows, peak RSS (MB), wall seconds, and (peak - import) / file size.
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "tests" / "fixtures" / "fate_clean.csv"


def write_large_fate_table(path: Path, megabytes: float, template: Path = TEMPLATE) -> int:
    """Write a valid fate table of about `megabytes` MB at `path` by repeating `template` with unique subject
    ids per copy; returns the number of data rows."""
    with open(template, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    subj = header.index("subject")
    target = int(megabytes * 1e6)
    n = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        copy = 0
        while fh.tell() < target:
            for r in body:
                r = list(r)
                r[subj] = f"{r[subj]}-{copy}"
                w.writerow(r)
                n += 1
            copy += 1
    return n


def peak_rss(cmd: list[str]) -> tuple[float, float, int]:
    """(peak RSS in MB, wall seconds, exit code) of `cmd` under /usr/bin/time -v."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    if m is None:
        sys.exit(f"no peak RSS in the output of /usr/bin/time:\n{proc.stderr[-2000:]}")
    return int(m.group(1)) / 1024, wall, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=50.0, help="size of the generated table in MB")
    ap.add_argument("--keep", type=Path, default=None, help="write the table here and keep it")
    args = ap.parse_args()
    mscbayes = str(Path(sys.executable).with_name("mscbayes"))
    tmp = Path(tempfile.mkdtemp(prefix="validate_memory_"))
    try:
        path = args.keep or tmp / "large_fate.csv"
        rows = write_large_fate_table(path, args.mb)
        size = path.stat().st_size / 1e6
        base, base_s, _ = peak_rss([mscbayes, "validate", str(TEMPLATE)])
        peak, secs, code = peak_rss([mscbayes, "validate", str(path)])
        print(f"validate of the 10-row template (import cost): peak RSS {base:.0f} MB, {base_s:.1f} s")
        print(f"validate {size:.1f} MB file, {rows} rows: peak RSS {peak:.0f} MB, {secs:.1f} s, exit {code}; "
              f"(peak - import) / file = {(peak - base) / size:.1f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
