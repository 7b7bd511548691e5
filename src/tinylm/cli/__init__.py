"""The command line: `tinylm <command>`. One module per command; each defines ``register(sub)``.

Nothing outside ``tinylm.cli`` imports from here.
"""
