#!/usr/bin/python3
"""Sum meson test logs into one closing line: 'N passed, N failed, N skipped'."""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("logs", nargs="*", help="meson-logs/testlog.json files")
    ap.add_argument("--extra", action="append", default=[],
                    help="NAME:ok|failed|skipped for a check run outside meson")
    args = ap.parse_args()
    passed = failed = skipped = 0
    for path in args.logs:
        try:
            f = open(path)
        except OSError as e:
            # The suite did not run to the end: that is a failure, and the
            # closing line must still come.
            failed += 1
            print(f"FAIL {path}: no test log ({e.strerror})")
            continue
        with f:
            for line in f:
                t = json.loads(line)
                res = t["result"]
                name = t["name"]
                if res in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                elif res == "SKIP":
                    skipped += 1
                    print(f"SKIP {path}: {name}")
                else:
                    failed += 1
                    print(f"FAIL {path}: {name} ({res})")
    for e in args.extra:
        name, _, res = e.partition(":")
        if res == "ok":
            passed += 1
        elif res == "skipped":
            skipped += 1
        else:
            failed += 1
            print(f"FAIL {name}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
