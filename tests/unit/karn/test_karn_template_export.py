"""Every catalog template exports with torch.export and a dynamic batch, matching eager."""

from __future__ import annotations

import pytest
import torch
from torch.export import Dim, export

from esper.ir import build_module, example_input
from esper.karn import TemplateCatalog

_CATALOG = TemplateCatalog.default()


@pytest.mark.parametrize("template_id", _CATALOG.template_ids())
def test_template_exports_with_a_dynamic_batch(template_id: str) -> None:
    ir = _CATALOG.get_template(template_id).ir
    module = build_module(ir)
    program = export(module, (example_input(ir, 2),), dynamic_shapes=({0: Dim("batch", min=1, max=4096)},)).module()
    for batch in (2, 7):
        x = example_input(ir, batch, seed=batch)
        torch.testing.assert_close(program(x), module(x), rtol=1e-5, atol=1e-6)
