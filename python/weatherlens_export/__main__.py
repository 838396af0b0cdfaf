"""`python -m weatherlens_export check FILE...`: apply every rule of the recording format and print a summary."""

import argparse
import json
import sys

from .format import RecordingError, check_recording


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m weatherlens_export")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check plain recordings against docs/recording.md; print their layout")
    check.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    status = 0
    for path in args.files:
        try:
            layout, warnings = check_recording(path)
        except (RecordingError, OSError) as e:
            print(f"{path}: {e}", file=sys.stderr)
            status = 1
            continue
        for warning in warnings:
            print(f"{path}: warning: {warning}", file=sys.stderr)
        print(json.dumps({"file": path, **layout.to_json()}, indent=1))
    return status


if __name__ == "__main__":
    sys.exit(main())
