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

from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server, ServerVariable

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "openapi.json"
FUNCTION = ROOT / "functions" / "api"
TITLE = "patchprop management API"
VERSION = "1.0.0"
SIGV4 = "sigv4"


def generate() -> str:
    """The document as committed: the handler's OpenAPI, indented, with a final newline."""
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the API handler's routes, as committed in openapi.json."""
    from patchprop_local.lambdas import load_handler

    app: Any = load_handler(FUNCTION, name="app")
    text = app.get_openapi_json_schema(
        title=TITLE,
        version=VERSION,
        description=(
            "Manage the images patchprop keeps rebuilt. Image references are normalized the way "
            "Docker does (node:22 is docker.io/library/node:22). In AWS every route needs a SigV4 "
            "signature (service execute-api); `patchprop` signs with your AWS credentials."
        ),
        servers=[
            Server(
                url="https://{api}.execute-api.{region}.amazonaws.com/v1",
                description="The stack's ApiUrl output",
                variables={
                    "api": ServerVariable(default="api-id", description="The REST API id"),
                    "region": ServerVariable(default="us-east-1"),
                },
            )
        ],
        security_schemes={
            SIGV4: APIKey(
                name="Authorization",
                in_=APIKeyIn.header,
                description="AWS Signature Version 4 (API Gateway AWS_IAM authorization).",
                openapi_extensions={"x-amazon-apigateway-authtype": "awsSigv4"},
            )
        },
        security=[{SIGV4: []}],
    )
    document: dict[str, Any] = json.loads(text)
    # Powertools documents a 422 on every route; this API answers bad input with 400 instead.
    for path in document["paths"].values():
        for operation in path.values():
            operation["responses"].pop("422", None)
    schemas = document["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(unused, None)
    return document


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
