"""HTTP routes of the catalogue domain."""

ROUTES: list = []
