"""Command line: ``python -m dspex_simlm [options]`` serves until SIGTERM/SIGINT and prints one
``DSPEX_SIMLM_READY <api_base>`` line to stdout once it listens."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from .config import FAULT_KINDS, READY_PREFIX, ConfigError, SimConfig, parse_fault_kinds
from .knowledge import KnowledgeBase, KnowledgeError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dspex-simlm", description="Simulated OpenAI-compatible LM.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--latency-jitter-ms", type=float, default=0.0)
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--fault-kinds", default=",".join(FAULT_KINDS))
    p.add_argument("--retry-after-s", type=float, default=0.2)
    p.add_argument("--timeout-s", type=float, default=30.0, help="how long a timeout fault hangs")
    p.add_argument("--seed", type=int, default=0, help="seeds the fault and jitter draws")
    p.add_argument(
        "--knowledge",
        action="append",
        default=[],
        metavar="FILE",
        help="JSONL file or directory (repeatable); default: the bundled math_qa task",
    )
    p.add_argument("--log-level", default="WARNING", help="stderr log level (DEBUG logs requests)")
    return p


async def serve(config: SimConfig, knowledge: KnowledgeBase) -> None:
    # Imported here so that `--help` and argument errors stay instant.
    from aiohttp import web

    from .server import create_app

    app = create_app(config, knowledge)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
    )
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    port = runner.addresses[0][1]
    host = "127.0.0.1" if config.host in ("0.0.0.0", "") else config.host
    print(f"{READY_PREFIX} http://{host}:{port}/v1", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # Windows has no add_signal_handler
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        config = SimConfig(
            host=args.host,
            port=args.port,
            latency_ms=args.latency_ms,
            latency_jitter_ms=args.latency_jitter_ms,
            fault_rate=args.fault_rate,
            fault_kinds=parse_fault_kinds(args.fault_kinds),
            retry_after_s=args.retry_after_s,
            timeout_s=args.timeout_s,
            seed=args.seed,
            knowledge=tuple(args.knowledge),
        )
        knowledge = KnowledgeBase.load(config.knowledge)
    except (ConfigError, KnowledgeError, OSError) as exc:
        print(f"dspex-simlm: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, knowledge))
    return 0


if __name__ == "__main__":
    sys.exit(main())
