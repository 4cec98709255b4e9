"""Graph layer: one context's entities and relations, folded from its journal; the store's contexts,
configuration, location, paging and call metrics.

May import ``storage`` (and ``errors``/``models``), nothing above.
"""
