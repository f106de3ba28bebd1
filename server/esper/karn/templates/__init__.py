"""Karn's built-in templates: builders parametric in the site's shapes (depth and width)."""

from esper.karn.templates import causal, features, image, sequence, width
from esper.karn.templates.spec import DEFAULT_SHAPES, LAST_LAYER_INIT_SCALE, TemplateSpec


def builtin_templates() -> tuple[TemplateSpec, ...]:
    return (*features.TEMPLATES, *image.TEMPLATES, *sequence.TEMPLATES, *causal.TEMPLATES, *width.TEMPLATES)


__all__ = ["DEFAULT_SHAPES", "LAST_LAYER_INIT_SCALE", "TemplateSpec", "builtin_templates"]
