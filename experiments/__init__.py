"""Entry points: `python -m experiments.<task>`. Thin: each builds a config and calls the library."""
