"""``python -m stepdpo_lite.tutorial``: run the notebooks headless (see ``notebooks.main``)."""

from .notebooks import main

if __name__ == "__main__":  # importing the module (help(), pydoc, an API walk) must not start a 10-minute run
    raise SystemExit(main())
