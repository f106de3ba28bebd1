"""The `esper` command line."""
