"""Frontend teams' view: TypeScript types generated from openapi/openapi.json (openapi-typescript)
must type-check a typical use of the API (clients/typescript/usage.ts) with `tsc --noEmit`."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "openapi" / "openapi.json"
PROJECT = ROOT / "clients" / "typescript"
BIN = PROJECT / "node_modules" / ".bin"


def typecheck(spec: Path, folder: Path) -> subprocess.CompletedProcess[str]:
    """Generate types from `spec` into `folder` beside a copy of the usage file; run tsc."""
    if not (BIN / "tsc").exists():
        pytest.fail("clients/typescript is not installed: run `make install` (npm ci).")
    for name in ("usage.ts", "tsconfig.json"):
        shutil.copy(PROJECT / name, folder / name)
    generated = subprocess.run(
        [
            str(BIN / "openapi-typescript"),
            str(spec),
            "--output",
            str(folder / "generated" / "schema.d.ts"),
        ],
        capture_output=True,
        text=True,
    )
    assert generated.returncode == 0, generated.stderr
    return subprocess.run(
        [str(BIN / "tsc"), "--noEmit", "-p", str(folder)], capture_output=True, text=True
    )


def test_the_frontend_usage_type_checks(tmp_path: Path) -> None:
    checked = typecheck(SPEC, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_breaking_change_fails_the_type_check(tmp_path: Path) -> None:
    spec = json.loads(SPEC.read_text())
    contact = spec["components"]["schemas"]["ContactRead"]
    del contact["properties"]["email"]
    contact["required"].remove("email")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(spec))
    checked = typecheck(broken, tmp_path)
    assert checked.returncode != 0
    assert "email" in checked.stdout
