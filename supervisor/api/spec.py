"""The /admin OpenAPI spec without a daemon: what the web app's types are generated from.

    python -m supervisor.api.spec OUT.json

writes the spec that /admin/openapi.json serves (`scripts/build-web.sh` runs it, then
openapi-typescript turns it into `web/src/generated/admin.ts`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .app import build_app


def admin_spec() -> dict[str, Any]:
    app = build_app()  # held here: the spec's provider keeps only a weak reference to it
    spec: dict[str, Any] = app.extensions["QUART_SCHEMA"].openapi_provider.schema()
    return spec


def spec_text(spec: dict[str, Any]) -> str:
    """One stable text for a spec, so a rebuild that changes nothing writes nothing new."""
    return json.dumps(spec, indent=1) + "\n"  # in the order served: the types follow it


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m supervisor.api.spec OUT.json", file=sys.stderr)
        return 2
    out = Path(argv[0])
    text = spec_text(admin_spec())
    if not out.exists() or out.read_text() != text:
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(text)
        tmp.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
