"""The management API's routes, by area, as Powertools routers that `functions/api/app.py` includes.

dependents: register, update, list, show, remove. fleet: bases, polls, rebuilds, graph, status,
report. by_hand: promote, roll back, patch a base now. Image references hold `/` and `:`, so they
travel in the query string or the body, never the path.
"""
