"""Jinja2 templates and the stylesheet of the static site (pipeline/site.py), shipped as package data."""
