"""``python -m dspex_client``: the ``dspex`` command line."""

from .cli import app

if __name__ == "__main__":
    app()
