"""``simcse-lab data list|fetch``: what the registry knows, what is here and verified, and filling the cache."""

from __future__ import annotations

import argparse
from pathlib import Path

from simcse_lab.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    sub.add_parser("list", help="show every dataset, where it is found and whether its checksums verify")
    fetch = sub.add_parser("fetch", help="verify and copy datasets into the cache (from a mirror or the URLs)")
    fetch.add_argument("names", nargs="*", help="datasets to fetch (default: all with pinned checksums)")
    fetch.add_argument("--from", dest="source", default=None,
                       help="a mirror root laid out like ../shared/data (default: download from the URLs)")


def run(args) -> int:
    from simcse_lab.data import registry

    if args.data_command == "list":
        roots = ", ".join(f"{label}={root}" for label, root in registry.search_roots())
        print(f"search order: {roots}")
        width = max(15, *(len(name) for name in registry.manifest()))
        print(f"{'name':<{width}} {'state':<9} {'files':>5}  where / description")
        for name, ds in registry.manifest().items():
            state, detail = registry.status(name)
            where = detail if state in ("verified", "unpinned") else ("not here" if state == "missing" else detail)
            print(f"{name:<{width}} {state:<9} {len(ds.files):>5}  {where}")
            print(f"{'':<{width}} {'':<9} {'':>5}  {ds.description}; licence: {ds.license}")
        return 0

    names = args.names or [n for n, ds in registry.manifest().items() if all(ds.files.values())]
    for name in names:
        registry.info(name)  # unknown names fail before anything is copied
    for name in names:
        if args.source:
            source = Path(args.source)
            if not source.is_dir():
                raise UserError(f"{source}: --from must be a directory (a mirror root)")
            copied = registry.fetch_from_dir(name, source)
        else:
            copied = registry.fetch_from_url(name)
        print(f"{name}: {len(copied)} file(s) verified and cached in {registry.cache_dir()}")
    return 0
