"""Every model of the contract has a name of its own: /openapi.json files schemas by class name, so
two rooms' `Health` became one (sender numbers' answers were checked against the callbacks' shape)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections import defaultdict

from pydantic import BaseModel

import gateway.contract


def test_no_two_contract_models_share_a_name() -> None:
    homes: dict[str, set[str]] = defaultdict(set)
    for info in pkgutil.iter_modules(gateway.contract.__path__):
        module = importlib.import_module(f"gateway.contract.{info.name}")
        for name, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseModel) and value.__module__ == module.__name__:
                homes[name].add(module.__name__)
    assert {name: sorted(where) for name, where in homes.items() if len(where) > 1} == {}
