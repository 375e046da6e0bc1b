"""The ``cgkit`` command line: one module per command group, one error boundary in app.main."""
