"""Matching routes: funnel (to be filled)."""

ROUTES: list = []
