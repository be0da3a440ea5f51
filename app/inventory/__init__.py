"""The one owner of stock: add credit batches, count what is left, lock and take credits."""
