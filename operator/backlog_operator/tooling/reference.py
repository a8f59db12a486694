"""The CRD reference in Markdown, made from the generated CRDs (so it cannot drift from them).

`backlogctl crds --output crds --reference docs/reference.md` writes it next to the CRDs;
`make crds` refreshes both, and a test fails when the committed file is stale.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from backlog_operator.tooling.crds import all_crds


def reference_markdown() -> str:
    """Every kind's spec and status fields as tables: path, type, default, meaning."""
    lines = [
        "# API reference",
        "",
        "Generated from the pydantic models by `make crds`; do not edit by hand.",
        "",
    ]
    for crd in all_crds():
        spec = crd["spec"]
        version = spec["versions"][0]
        kind = spec["names"]["kind"]
        lines += [
            f"## {kind} (`{spec['group']}/{version['name']}`)",
            "",
            f"Plural `{spec['names']['plural']}`, short names "
            f"{', '.join(f'`{n}`' for n in spec['names'].get('shortNames', [])) or 'none'}, "
            f"scope {spec['scope']}, category "
            f"{', '.join(f'`{n}`' for n in spec['names'].get('categories', [])) or 'none'}.",
            "",
            *_columns(version),
        ]
        properties = version["schema"]["openAPIV3Schema"]["properties"]
        for part in ("spec", "status"):
            if part in properties:
                lines += [f"### `{part}`", "", "| field | type | default | description |"]
                lines += ["|---|---|---|---|"]
                lines += [
                    _row(path, node, required)
                    for path, node, required in _fields(properties[part], part)
                ]
                lines.append("")
    return "\n".join(lines)


def _columns(version: Mapping[str, Any]) -> list[str]:
    """`kubectl get`'s columns (and those `-o wide` adds), then a blank line."""
    columns = version.get("additionalPrinterColumns", [])
    if not columns:
        return []
    shown = ["NAME"] + [column["name"].upper() for column in columns if not column.get("priority")]
    wide = [column["name"].upper() for column in columns if column.get("priority")]
    line = "`kubectl get` columns: " + ", ".join(f"`{name}`" for name in shown)
    if wide:
        line += "; `-o wide` adds " + ", ".join(f"`{name}`" for name in wide)
    return [line + ".", ""]


def _fields(
    schema: Mapping[str, Any], prefix: str
) -> Iterator[tuple[str, Mapping[str, Any], bool]]:
    required = set(schema.get("required", []))
    for name, node in schema.get("properties", {}).items():
        path = f"{prefix}.{name}"
        yield path, node, name in required
        if node.get("type") == "object" and "properties" in node:
            yield from _fields(node, path)
        items = node.get("items", {})
        if node.get("type") == "array" and items.get("type") == "object" and "properties" in items:
            yield from _fields(items, f"{path}[]")


def _row(path: str, node: Mapping[str, Any], required: bool) -> str:
    kind = _type(node)
    default = (
        f"`{_inline(node['default'])}`" if "default" in node else ("required" if required else "")
    )
    description = str(node.get("description", "")).replace("|", "\\|").replace("\n", " ")
    if "enum" in node:
        description += " One of: " + ", ".join(f"`{value}`" for value in node["enum"]) + "."
    if "pattern" in node:
        description += f" Pattern: `{node['pattern']}`."
    return f"| `{path}` | {kind} | {default} | {description.strip()} |"


def _type(node: Mapping[str, Any]) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "int or string"
    if node.get("type") == "array":
        return f"array of {_type(node.get('items', {}))}"
    if node.get("format") == "date-time":
        return "timestamp"
    return str(node.get("type", "any"))


def _inline(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)) and not value:
        return "[]" if isinstance(value, list) else "{}"
    return str(value)
