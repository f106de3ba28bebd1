"""Kasmina: the seed operator inside the host model (lifecycle, kernel cache, grafting)."""
