"""Haven checks against a live cluster (`cgkit haven check`).

Haven is VNG's standard for the Kubernetes clusters that host Common Ground applications; the
Haven Compliancy Checker judges a cluster by its mandatory checks. cgkit establishes each of those
checks it can from where it runs: ``checks.yaml`` lists them (title as the checker prints it,
category, how cgkit decides, source), ``facts`` gathers what the cluster shows, ``verdicts`` judges
(passed, failed, or not verifiable with the reason, never passed without evidence), ``report``
renders text, JSON and SARIF.
"""
