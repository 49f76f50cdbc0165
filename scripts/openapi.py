"""Write the management API's OpenAPI document (openapi.json), generated from its handler.

python scripts/openapi.py            # rewrite openapi.json
python scripts/openapi.py --check    # exit 1 if openapi.json is not what the code generates
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "openapi.json"
FUNCTION = ROOT / "functions" / "api"


def generate() -> str:
    """The document as committed: the handler's OpenAPI, indented, with a final newline."""
    from patchprop_local.lambdas import load_handler

    openapi_document: Any = load_handler(FUNCTION, name="openapi_document")
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when stale")
    parser.add_argument("--output", type=Path, default=DOCUMENT, help="default: openapi.json")
    args = parser.parse_args(argv)
    wanted = generate()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current == wanted:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True), wanted.splitlines(keepends=True), str(args.output), "generated"
        )
        sys.stderr.writelines(list(diff)[:60])
        print(f"{args.output} is stale: run `python scripts/openapi.py`", file=sys.stderr)
        return 1
    args.output.write_text(wanted, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
