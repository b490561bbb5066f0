"""`rentstack models`: the model catalog, one line each."""

from __future__ import annotations

import argparse

from rentstack.config import load_catalog


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the model catalog")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for name, entry in sorted(load_catalog().items()):
        print(f"{name:32} {str(entry.source):50} {entry.weights_gib:7.1f} GiB  {entry.description}")
    return 0
