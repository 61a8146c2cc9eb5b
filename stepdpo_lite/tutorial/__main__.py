"""``python -m stepdpo_lite.tutorial``: run the notebooks headless (see ``notebooks.main``)."""

from .notebooks import main

raise SystemExit(main())
