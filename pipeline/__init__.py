"""Token Spot Index: collect, keep, normalise and fix GPU-hour and token prices.

Plain Python with no Prefect import, so that every step can be tested alone; `flows/` wires it.
"""
