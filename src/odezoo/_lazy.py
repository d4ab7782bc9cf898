"""Lazy exports for package `__init__`s, so that `odezoo --help` and `odezoo list` start
without importing JAX.

A package lists its exports as `{name: module}`; the module is imported on first access
of the name (PEP 562), and the name is then cached on the package. The package also
spells the imports out under `if typing.TYPE_CHECKING:` for type checkers and the API
docs; `type_checking_exports` reads the list from there, so that each name is written
once, and `tests/test_cli.py` checks that both lists agree where a package repeats it.
"""

from __future__ import annotations

import ast
import importlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def type_checking_exports(init_file: str | os.PathLike) -> dict[str, str]:
    """The `{public name: module}` a package spells out in its `__init__`'s
    `if TYPE_CHECKING:` block of `from MODULE import NAME as NAME` lines, for
    `lazy_exports`.

    Arguments:

    - `init_file`: the package's `__file__`.

    ```python
    import odezoo.zoo
    from odezoo._lazy import type_checking_exports

    assert type_checking_exports(odezoo.zoo.__file__)["build_entry"] == "._build"
    ```
    """
    tree = ast.parse(Path(init_file).read_text(), filename=str(init_file))
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            return {
                alias.asname or alias.name: "." * imp.level + (imp.module or "")
                for imp in node.body
                if isinstance(imp, ast.ImportFrom)
                for alias in imp.names
            }
    raise ImportError(f"{init_file} has no `if TYPE_CHECKING:` block of exports")


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of a package whose `exports` map each public name
    to the module (absolute, or relative to `package`) that defines it. A name that maps
    to its own submodule (`"zoo": ".zoo"`) exports the submodule itself.

    Arguments:

    - `package`: the package's `__name__`.
    - `exports`: `{public name: module}`.
    - `namespace`: the package's `globals()`, where each resolved name is cached.

    ```python
    from odezoo._lazy import lazy_exports

    getattr_, dir_ = lazy_exports("odezoo", {"zoo": ".zoo"}, {})
    assert getattr_("zoo").__name__ == "odezoo.zoo"
    ```
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        mod = importlib.import_module(module, package)
        value = mod if mod.__name__.rpartition(".")[2] == name else getattr(mod, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
