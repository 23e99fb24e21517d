"""Prints how big the runtime package is: its lines, each vendor's lines, and the biggest modules.

    python dev/code_size.py            # a table
    python dev/code_size.py --json     # one JSON line: runtime_lines, vendors, biggest_module, ...

Lines are physical lines of the ``.py`` files of ``airflow_provider_exports`` (the provider wheel's
code; the sandbox distribution and CI's tools are not runtime). A vendor's lines are those of the
modules named after it (hook, operators, sensor, trigger, transfers): what adding a vendor costs.
Issue 17's targets: runtime <= 11,500, each vendor <= 700, no module over 600. Code lines are
those lines less docstrings, comments and blank lines: what no rewording of the prose can shrink.
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parents[1] / "airflow_provider_exports"
#: the part of a module's name that says which vendor it is for
VENDORS = {"Sitecore CDP": "sitecore_cdp", "Cordial": "cordial", "Adobe Experience Platform": "adobe_experience_platform"}
#: not runtime code, while they still live in the package (issue 17 moves them out)
HARNESS = ("sandbox", "testing")
TARGETS = {"runtime_lines": 11_500, "vendor_lines": 700, "module_lines": 600}


def modules() -> dict[str, int]:
    """Lines of every runtime module, by its path under the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in HARNESS:
            continue
        with path.open("rb") as f:
            found[str(relative)] = sum(1 for _ in f)
    return found


def code_lines(path: Path) -> int:
    """Lines of ``path`` that are neither blank, a comment, nor part of a docstring."""
    source = path.read_text(encoding="utf-8")
    prose: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                prose.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return sum(
        1
        for number, line in enumerate(source.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#") and number not in prose
    )


def vendor_of(module: str) -> str | None:
    stem = Path(module).stem.lstrip("_")
    return next((name for name, key in VENDORS.items() if key in stem), None)


def measure() -> dict[str, Any]:
    lines = modules()
    vendors: dict[str, dict[str, int]] = {name: {} for name in VENDORS}
    for module, count in lines.items():
        vendor = vendor_of(module)
        if vendor is not None:
            vendors[vendor][module] = count
    biggest = sorted(lines.items(), key=lambda item: -item[1])
    code = {module: code_lines(PACKAGE / module) for module in lines}
    return {
        "runtime_lines": sum(lines.values()),
        "runtime_code_lines": sum(code.values()),
        "modules": len(lines),
        "vendors": {name: sum(files.values()) for name, files in vendors.items()},
        "vendor_code_lines": {name: sum(code[m] for m in files) for name, files in vendors.items()},
        "vendor_modules": vendors,
        "biggest_module": {"module": biggest[0][0], "lines": biggest[0][1]},
        "over_600": {m: n for m, n in biggest if n > TARGETS["module_lines"]},
        "targets": TARGETS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON line instead of a table")
    args = parser.parse_args()
    result = measure()
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "vendor_modules"}))
        return
    print(f"runtime: {result['runtime_lines']:,} lines in {result['modules']} modules "
          f"(target <= {TARGETS['runtime_lines']:,}); code lines {result['runtime_code_lines']:,}")
    for vendor, files in result["vendor_modules"].items():
        print(f"  {vendor}: {sum(files.values()):,} lines (target <= {TARGETS['vendor_lines']}); "
              f"code lines {result['vendor_code_lines'][vendor]:,}")
        for module, count in sorted(files.items()):
            print(f"    {count:5d}  {module}")
    over = result["over_600"]
    print(f"biggest module: {result['biggest_module']['module']} ({result['biggest_module']['lines']} lines)")
    print(f"modules over {TARGETS['module_lines']} lines: " + (", ".join(f"{m} ({n})" for m, n in over.items()) or "none"))


if __name__ == "__main__":
    main()
