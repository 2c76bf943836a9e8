"""Matching routes: profile (to be filled)."""

ROUTES: list = []
