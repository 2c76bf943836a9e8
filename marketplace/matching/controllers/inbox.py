"""Matching routes: inbox (to be filled)."""

ROUTES: list = []
