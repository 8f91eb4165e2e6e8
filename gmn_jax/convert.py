"""`python -m gmn_jax.convert`: the `gmn-convert` command, implemented in `gmn_jax.io.cli`."""

from gmn_jax.io.cli import main

if __name__ == '__main__':
  raise SystemExit(main())
