"""HTTP routes of the offers domain."""

ROUTES: list = []
