"""Urza: the central asset hub for blueprint IRs, kernel artifacts and their status."""
