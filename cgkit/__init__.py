"""cgkit: provisioning kit for shared hosting of the Dutch Common Ground applications.

One config file per municipality (gemeente), layered over an environment file, becomes one Pulumi
stack with an isolated Kubernetes tenant. See DESIGN.md for the architecture.
"""
