"""HTTP routes of the patents domain."""

ROUTES: list = []
