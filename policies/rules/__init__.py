"""Rule families. Each family is a package: ``__init__.py`` holds its rules, ``cases/<rule-id>/`` its
pass/fail fixtures. `FAMILIES` is the explicit index the catalog imports; a family not listed here is
not loaded.
"""

FAMILIES = ("pod_security", "workload", "secrets", "network", "rbac", "tenancy")
