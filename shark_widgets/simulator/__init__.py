"""A local stand-in for SharkAPI, strict to its contract, for demos and tests.

:class:`SharkSimulator` serves the API (``GET /v1/jobs/<id>``,
``POST /v1/generate``) and the generated images on two loopback ports, moves
jobs through ``queued``, ``processing`` and a terminal state on a clock that
can be sped up, keeps wallets, and misbehaves on demand with :class:`Fault`.
Prompt markers pick the outcome: ``[fail]`` ends ``failed``, ``[moderate]``
ends ``moderated``, anything else ``complete``.

Run it on its own with ``python -m shark_widgets.simulator --port 8000``.
"""

from .faults import Fault
from .server import SharkSimulator
from .service import ApiError, ImageRequestRecord, RequestRecord

__all__ = ["ApiError", "Fault", "ImageRequestRecord", "RequestRecord", "SharkSimulator"]
