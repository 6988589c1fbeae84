"""An engine core in a Ray actor: :class:`RayHost` (a :class:`~llmos.core.CoreHost`) and its channel.

The actor runs the very same :func:`llmos.core.engine_core.serve` loop as a child process does,
over an in-actor channel; the front-end's :class:`RayChannel` carries the same typed messages:

* to the core, each message is one ``push`` actor call (a request, an abort, a call — never a
  token), numbered so the actor delivers them in order even though its calls run on a pool;
* from the core, the reader's ``pull`` call returns **everything** the core sent since the last
  pull (at least one message, or none after a short wait): one round trip per step's batch of
  outputs, never one per token.

A dead actor or node fails the pending ``pull`` with Ray's actor error: the channel raises
EOFError and :class:`~llmos.core.CoreClient` fails the started requests with EngineDeadError, as
it does for a dead process.

Before the core starts, :meth:`RayHost.start` makes sure the model file is on the actor's node
(see :mod:`llmos.cluster.blobs`) and the actor rewrites the CoreSpec's path to where it is there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import threading
from collections import deque
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError

from llmos.cluster.blobs import CHUNK_BYTES, BlobCache, blob_digest
from llmos.core.channel import Channel
from llmos.core.engine_core import serve
from llmos.core.messages import CoreSpec
from llmos.engine.backends import make_engine
from llmos.errors import EngineDeadError

logger = logging.getLogger(__name__)

PULL_WAIT_S = 1.0
"""How long one ``pull`` waits for the core to say something before returning nothing."""
CHUNKS_IN_FLIGHT = 4
_EOF = object()


@dataclasses.dataclass(frozen=True)
class ReplicaResources:
    """What one replica's actor asks Ray for."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory_bytes: int = 0


class _ActorChannel:
    """The core's end inside the actor: the loop ``recv``s what ``push`` delivered and ``send``s
    what ``pull`` collects."""

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def send(self, msg: Any) -> None:
        self.outbox.put(msg)

    def recv(self) -> Any:
        msg = self.inbox.get()
        if msg is _EOF:
            self.inbox.put(_EOF)
            raise EOFError("the front-end closed the channel")
        return msg

    def close(self) -> None:
        self.outbox.put(_EOF)


class CoreActor:
    """The actor that hosts one engine core (made remote with resource requests by :class:`RayHost`)."""

    def __init__(self, blob_root: str) -> None:
        self._channel = _ActorChannel()
        self._blobs = BlobCache(Path(blob_root))
        self._paths: dict[str, str] = {}
        self._next = 1
        self._pending: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="llmos-core", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            serve(self._channel, make_engine)
        finally:
            self._channel.close()

    def where(self) -> tuple[str, int]:
        """(Ray node id, pid) of this actor."""
        return ray.get_runtime_context().get_node_id(), os.getpid()

    # -- the model file ----------------------------------------------------------------------

    def has_blob(self, remote_path: str, sha256: str) -> bool:
        found = self._blobs.find(remote_path, sha256)
        if found is not None:
            self._paths[remote_path] = str(found)
        return found is not None

    def begin_blob(self, sha256: str, size: int) -> None:
        self._blobs.begin(sha256, size)

    def put_chunk(self, sha256: str, offset: int, data: bytes) -> None:
        self._blobs.write(sha256, offset, data)

    def end_blob(self, remote_path: str, sha256: str) -> str:
        path = self._blobs.finish(sha256)
        self._paths[remote_path] = str(path)
        return str(path)

    # -- the channel ---------------------------------------------------------------------------

    def push(self, n: int, msg: Any) -> None:
        """Deliver message number ``n`` (1, 2, ...) once every earlier one has been delivered."""
        with self._lock:
            self._pending[n] = msg
            while self._next in self._pending:
                item = self._pending.pop(self._next)
                self._next += 1
                if isinstance(item, CoreSpec):
                    item = self._localize(item)
                self._channel.inbox.put(item)

    def _localize(self, spec: CoreSpec) -> CoreSpec:
        local = self._paths.get(str(spec.load.model_path))
        if local is None:
            return spec
        return dataclasses.replace(spec, load=dataclasses.replace(spec.load, model_path=Path(local)))

    def pull(self, wait_s: float = PULL_WAIT_S) -> tuple[list[Any], bool]:
        """What the core sent since the last pull (waiting up to ``wait_s`` for the first), and
        whether the core has ended."""
        if self._closed:
            return [], True
        out: list[Any] = []
        try:
            out.append(self._channel.outbox.get(timeout=wait_s))
        except queue.Empty:
            return [], False
        while True:
            try:
                out.append(self._channel.outbox.get_nowait())
            except queue.Empty:
                break
        if any(m is _EOF for m in out):
            self._closed = True
            out = [m for m in out if m is not _EOF]
        return out, self._closed

    def close(self) -> None:
        self._channel.inbox.put(_EOF)


class RayChannel:
    """The front-end's end of a core's channel in a Ray actor (see the module docstring)."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor
        self._n = 0
        self._send_lock = threading.Lock()
        self._buffer: deque[Any] = deque()
        self._ended = False
        self.error: str = ""

    def send(self, msg: Any) -> None:
        if self._ended:
            raise EOFError("the channel is closed")
        with self._send_lock:
            self._n += 1
            self._actor.push.remote(self._n, msg)

    def recv(self) -> Any:
        while not self._buffer:
            if self._ended:
                raise EOFError(self.error or "the engine core's actor ended")
            try:
                msgs, closed = ray.get(self._actor.pull.remote(PULL_WAIT_S))
            except (RayActorError, RayError) as exc:
                self._ended = True
                self.error = _first_line(exc)
                raise EOFError(self.error) from exc
            self._buffer.extend(msgs)
            if closed:
                self._ended = True
        return self._buffer.popleft()

    def close(self) -> None:
        if not self._ended:
            self._ended = True
            with contextlib.suppress(RayError):
                self._actor.close.remote()


class RayHost:
    """Starts one engine core in a Ray actor placed by Ray on a node with ``resources``.

    ``model_path`` is the model file as the front-end sees it; its sha256 is checked on the
    actor's node, and the bytes are sent there if that node lacks it. ``blob_root``: the node's
    blob cache (created on demand)."""

    def __init__(
        self,
        model_path: Path,
        *,
        resources: ReplicaResources,
        blob_root: Path,
        name: str = "",
    ) -> None:
        self.model_path = model_path
        self.resources = resources
        self.blob_root = blob_root
        self.name = name
        self.actor: Any = None
        self.node_id: str | None = None
        self._pid: int | None = None
        self._channel: RayChannel | None = None
        self.transferred_bytes = 0

    def start(self) -> Channel:
        remote = ray.remote(CoreActor).options(
            num_cpus=self.resources.num_cpus,
            num_gpus=self.resources.num_gpus,
            memory=self.resources.memory_bytes or None,
            max_concurrency=8,
            max_restarts=0,
            name=None,
        )
        self.actor = remote.remote(str(self.blob_root))
        try:
            self.node_id, self._pid = ray.get(self.actor.where.remote())
            self._ensure_blob()
        except RayError as exc:
            self.stop(0)
            raise EngineDeadError(f"the replica's actor could not start: {_first_line(exc)}") from exc
        self._channel = RayChannel(self.actor)
        logger.info("replica %s: actor pid %s on node %s", self.name, self._pid, (self.node_id or "")[:12])
        return self._channel

    def _ensure_blob(self) -> None:
        path = self.model_path
        if not path.is_file():  # a directory model (sentence-transformers) must be on shared storage
            return
        digest = blob_digest(path)
        if ray.get(self.actor.has_blob.remote(str(path), digest)):
            return
        size = path.stat().st_size
        logger.info("sending %s (%d bytes) to node %s", path.name, size, (self.node_id or "")[:12])
        ray.get(self.actor.begin_blob.remote(digest, size))
        in_flight: deque[Any] = deque()
        with path.open("rb") as f:
            offset = 0
            while True:
                data = f.read(CHUNK_BYTES)
                if not data:
                    break
                in_flight.append(self.actor.put_chunk.remote(digest, offset, ray.put(data)))
                offset += len(data)
                if len(in_flight) >= CHUNKS_IN_FLIGHT:
                    ray.get(in_flight.popleft())
        ray.get(list(in_flight))
        ray.get(self.actor.end_blob.remote(str(path), digest))
        self.transferred_bytes += size

    @property
    def pid(self) -> int | None:
        return self._pid

    def exit_detail(self) -> str:
        channel = self._channel
        return f"Ray actor: {channel.error}" if channel is not None and channel.error else ""

    def stop(self, timeout: float) -> None:
        actor = self.actor
        if actor is None:
            return
        if timeout > 0:
            # already gone, or it did not end in time: killed below
            with contextlib.suppress(Exception):
                ray.get(actor.__ray_terminate__.remote(), timeout=timeout)
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
