"""Sub-commands of the ``simcse-lab`` CLI: each module has ``add_arguments(parser)`` and ``run(args)``."""
