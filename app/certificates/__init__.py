"""Certificates of carbon credit retirement: unguessable ids and the PDF and HTML renderings."""
