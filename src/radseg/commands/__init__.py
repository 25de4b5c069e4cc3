"""Sub-command groups of the ``radseg`` CLI; each module's ``register(app)`` adds its commands."""
