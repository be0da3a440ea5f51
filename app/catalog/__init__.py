"""Projects, credit batches (the inventory), bundles, portfolios and their prices."""
