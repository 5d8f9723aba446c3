"""Shipped data, installed as the package ``bayesmoe.shipped``: runs tables and published coefficients."""
