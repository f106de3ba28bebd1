"""The researcher's SDK behind `import esper`: `esper.Trainer`, `esper.Session` and their `FitResult`.

See docs/sdk.md. `esper.wrap`, `esper.save_model` and `esper.load_model` live in Kasmina;
`esper.Metric` in Tolaria's objective.
"""
