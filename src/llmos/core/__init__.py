"""Engine cores: each loaded model's scheduler and engine in one loop, behind typed messages.

Above ``engine/`` and ``scheduler/``, below ``kernel/``::

    kernel ──► CoreClient (server process) ══ Channel ══► EngineCore loop (its own process)
               submit → RequestStream               receive → schedule → step → emit
               calls → futures                      frontend thread: render + tokenize

* :mod:`llmos.core.messages`: everything that crosses the boundary, as typed messages.
* :mod:`llmos.core.engine_core`: :class:`EngineCore` (engine + :class:`~llmos.scheduler.ModelScheduler`)
  and :func:`serve`, the loop over a channel.
* :mod:`llmos.core.channel`: the transport seam (:class:`PipeChannel`, :class:`QueueChannel`).
* :mod:`llmos.core.hosts`: where a core runs: :class:`ProcessHost` (one process per model, the
  server's default) or :class:`ThreadHost` (tests, benchmarks; the fake engine runs the very same
  core code).
* :mod:`llmos.core.client`: :class:`CoreClient`, what the kernel holds per resident model.
* :mod:`llmos.core.stream`: :class:`RequestStream`, one submitted sequence's outputs.
"""

from __future__ import annotations

from llmos.core.channel import Channel, PipeChannel, QueueChannel
from llmos.core.client import CoreClient
from llmos.core.engine_core import EngineCore, serve
from llmos.core.hosts import CoreHost, ProcessHost, ThreadHost
from llmos.core.messages import CoreSpec
from llmos.core.stream import RequestStream, Signal

__all__ = [
    "Channel",
    "CoreClient",
    "CoreHost",
    "CoreSpec",
    "EngineCore",
    "PipeChannel",
    "ProcessHost",
    "QueueChannel",
    "RequestStream",
    "Signal",
    "ThreadHost",
    "serve",
]
