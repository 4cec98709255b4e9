"""``python -m coaia_store.server.reference > docs/tools.md``: write the tool reference to stdout."""

from . import main

main()
