"""Graph layer: one context's entities and relations, folded from its journal; the store's contexts and their
graph API (``GraphStore``), configuration, location, paging, capacity and call metrics.

May import ``storage`` (and ``errors``/``models``), nothing above.
"""
