"""cgkit's policy rules and the CrossGuard pack that runs them.

The rules (``policies/rules/<family>/``) are pure functions over Kubernetes manifests; the catalog
(`policies.catalog`) holds them with the controls they serve (``controls.yaml``); `policies.evaluate`
runs them; `policies.pack` adapts them to a Pulumi CrossGuard policy pack (this directory is the pack:
``PulumiPolicy.yaml`` + ``__main__.py``). See README.md in this directory.
"""
