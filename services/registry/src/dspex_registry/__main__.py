"""``python -m dspex_registry``: serve one registry replica until SIGTERM; ``python -m
dspex_registry migrate [REVISION]`` upgrades the database (a deployment Job) and exits."""

from __future__ import annotations

import argparse
import asyncio

from .adapters.migrate import migrate
from .app import create_app
from .settings import RegistrySettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m dspex_registry", description="The DSPEx registry service."
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve until SIGTERM (the default)")
    migrating = commands.add_parser("migrate", help="upgrade the database schema, then exit")
    migrating.add_argument("revision", nargs="?", default="head")
    args = parser.parse_args(argv)
    settings = RegistrySettings()
    if args.command == "migrate":
        revision = asyncio.run(migrate(settings, args.revision))
        print(f"registry database at revision {revision}")
        return
    service, app = create_app(settings)
    service.run(app)


if __name__ == "__main__":
    main()
