"""`courier feeds apply FILE`: one YAML document, several sections, each applied by its owner.

A section handler validates its list (pydantic) and writes it in one go; errors
name the YAML line of the offending item so the author can find it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from courier.common.db.engine import Database
from courier.common.db.models import Tenant


class SpecError(Exception):
    pass


class Document(BaseModel):
    """Top level of a spec file; sections are lists validated by their handlers."""

    model_config = ConfigDict(extra="allow")

    tenant: str


@dataclass
class Item:
    data: dict[str, Any]
    line: int  # 1-based line of the item in the YAML file


SectionHandler = Callable[[Database, Tenant, list[Item]], Awaitable[list[str]]]
SECTIONS: dict[str, SectionHandler] = {}


def section(name: str) -> Callable[[SectionHandler], SectionHandler]:
    def register(fn: SectionHandler) -> SectionHandler:
        SECTIONS[name] = fn
        return fn

    return register


# A spec file is small; aliases of aliases could expand one a billion-fold (the "billion
# laughs"), so a document larger than this once aliases are expanded is refused.
MAX_NODES = 100_000


class _LineLoader(yaml.SafeLoader):
    def construct_document(self, node: yaml.Node) -> Any:
        if _expanded_size(node, {}) > MAX_NODES:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"more than {MAX_NODES} values once aliases are expanded",
                node.start_mark,
            )
        return super().construct_document(node)


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Values in the document under `node` with every alias written out (each shared
    node counted once per use, computed once)."""
    if id(node) in sizes:
        return sizes[id(node)]
    sizes[id(node)] = 1  # a node inside itself: the constructor refuses it
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(item, sizes) for item in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    sizes[id(node)] = size
    return size


def _mapping_with_line(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[str, Any]:
    data = loader.construct_mapping(node, deep=True)
    data["__line__"] = node.start_mark.line + 1
    return data


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def register_sections() -> None:
    """Section handlers live in `courier.cli.section_<name>` modules."""
    import courier.cli as cli_package

    for info in pkgutil.iter_modules(cli_package.__path__):
        if info.name.startswith("section_"):
            importlib.import_module(f"{cli_package.__name__}.{info.name}")


def load(path: Path) -> tuple[Document, dict[str, list[Item]]]:
    register_sections()
    try:
        # Bytes: YAML reads UTF-8 (or UTF-16 with a BOM) itself and names a bad byte.
        raw = yaml.load(path.read_bytes(), Loader=_LineLoader)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    except RecursionError:
        raise SpecError(f"{path}: not valid YAML: nested too deeply") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping with 'tenant' and sections")
    try:
        doc = Document.model_validate(_strip_lines(raw))
    except ValidationError as exc:
        raise SpecError(f"{path}: {format_errors(exc)}") from exc
    sections: dict[str, list[Item]] = {}
    for key, value in raw.items():
        if key in ("tenant", "__line__"):
            continue
        if key not in SECTIONS:
            known = ", ".join(sorted(SECTIONS)) or "none"
            raise SpecError(f"{path}: unknown section {key!r} (known: {known})")
        if not isinstance(value, list):
            raise SpecError(f"{path}: section {key!r} must be a list")
        sections[key] = [
            Item(_strip_lines(v), v.get("__line__", 0) if isinstance(v, dict) else 0) for v in value
        ]
    return doc, sections


def format_errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'item'}: {err['msg']}" for err in exc.errors()
    )


def validate_items(model: type[BaseModel], items: list[Item], path: str) -> list[Any]:
    """Validate every item; one error listing names each bad item's line and field."""
    out, problems = [], []
    for item in items:
        try:
            out.append(model.model_validate(item.data))
        except ValidationError as exc:
            problems.append(f"line {item.line}: {format_errors(exc)}")
    if problems:
        raise SpecError(f"{path}: " + "; ".join(problems))
    return out
