"""Karn, the blueprint architect: the tiered template catalog."""

from esper.karn.catalog import TemplateCatalog

__all__ = ["TemplateCatalog"]
