"""Lazy exports for package `__init__`s, so that `odezoo --help` and `odezoo list` start
without importing JAX.

A package spells its lazy exports out once, as the imports of an `if TYPE_CHECKING:` block
of its `__init__` (which type checkers and the API docs read); `type_checking_exports`
turns that block into `{name: module}`, and `lazy_exports` imports the module on first
access of the name (PEP 562) and caches the name on the package. A package's `__init__`
(so not run as an example):

```text
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports, type_checking_exports

if TYPE_CHECKING:
    from . import zoo as zoo                   # a submodule
    from ._solve import solve as solve         # a name of a module

_EXPORTS = type_checking_exports(__file__)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
```
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
                alias.asname or alias.name: _module_of(imp, alias)
                for imp in node.body
                if isinstance(imp, ast.ImportFrom)
                for alias in imp.names
            }
    raise ImportError(f"{init_file} has no `if TYPE_CHECKING:` block of exports")


def _module_of(imp: ast.ImportFrom, alias: ast.alias) -> str:
    """The module `lazy_exports` imports for one name of `from MODULE import NAME`: MODULE,
    or, for a submodule (`from . import zoo`), the submodule itself (`.zoo`)."""
    dots = "." * imp.level
    return dots + imp.module if imp.module else dots + alias.name


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
