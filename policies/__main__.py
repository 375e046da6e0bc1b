"""Entry point of the CrossGuard pack: the Pulumi engine starts this file inside policies/.

The project root goes on sys.path first, so ``policies`` and ``cgkit`` import as packages (and the
pack folder's own modules are not mistaken for top-level ones). `PolicyPack` serves the policies to
the engine over gRPC until it is stopped; see `policies.pack` for how rules become policies.
"""

import sys
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parent
sys.path[:] = [str(PACK_DIR.parent)] + [p for p in sys.path if Path(p or ".").resolve() != PACK_DIR]

from pulumi_policy import PolicyPack  # noqa: E402  (after the path fix above)

from policies.pack import PACK_NAME, policies  # noqa: E402

PolicyPack(name=PACK_NAME, policies=policies())
