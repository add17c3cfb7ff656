"""``python -m dspex_evaluator``: run one evaluator replica until SIGTERM."""

from __future__ import annotations

from .app import create_app


def main() -> None:
    service, app = create_app()
    service.run(app)


if __name__ == "__main__":
    main()
