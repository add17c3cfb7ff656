"""``python -m dspex_optimizer``: run one optimizer replica until SIGTERM."""

from __future__ import annotations

from .app import create_app


def main() -> None:
    optimizer, app = create_app()
    optimizer.service.run(app)


if __name__ == "__main__":
    main()
