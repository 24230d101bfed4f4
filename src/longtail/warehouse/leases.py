"""Locks (one publisher per partition) and read leases (retention never deletes what is read).

A lock is a file created if absent; it names its holder (`lock_holder`), so a lock left by a
process that died on this host is taken over at once, and any other after LOCK_STALE_S.

A stage holds a read lease on every night it reads for as long as it runs; retention takes a
removal lock on a night (or the embedding cache) and deletes nothing while a live lease exists.
Each side writes its own file first and looks for the other's second, so at least one of them
sees the other: either the stage stops before reading ("retention is removing ...", retried
like any lock) or retention leaves the night alone.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from longtail.warehouse.fs import Fs, PublishError
from longtail.warehouse.layout import lease_dir, removal_lock_path

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LOCK_STALE_S = 600
# A read lease is a running stage's: live while its process is (on this host), else for this long
# (longer than the DAG's execution_timeout of 3 hours).
LEASE_STALE_S = 4 * 3600
log = logging.getLogger("longtail")


def lock_holder() -> str:
    """What a lock file says about its holder: enough to tell, on this host, that it has died."""
    return json.dumps({"id": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid()})


def holder_is_dead(holder: str) -> bool:
    """True when the lock was taken by a process on this host that no longer exists.

    A task killed in the middle of a publish (OOM, a worker restart) leaves its lock behind; its
    retry on the same host need not wait LOCK_STALE_S for it to go stale.
    """
    try:
        info = json.loads(holder)
        if info.get("host") != socket.gethostname() or int(info["pid"]) == os.getpid():
            return False
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return True
    except Exception:  # not ours to judge (another host, another format, no permission)
        return False
    return False


def try_lock(fs: Fs, uri: str, owner: str) -> bool:
    """Atomic create-if-absent; a lock older than LOCK_STALE_S is a crashed writer's."""
    if fs.exists(uri):
        try:
            age_s = fs.age_s(uri)
            holder = fs.read_text(uri)
        except Exception:  # released between the calls: free now
            age_s, holder = None, ""
        if age_s is not None and age_s < LOCK_STALE_S and not holder_is_dead(holder):
            return False
        if age_s is not None:
            try:  # only the lock judged stale: another taker may have replaced it meanwhile
                if fs.read_text(uri) != holder:
                    return False
            except Exception:  # gone already
                pass
            else:
                fs.delete(uri)
    return fs.create_new(uri, owner)


def _is_live(fs: Fs, uri: str, stale_s: float) -> bool:
    """A lock or lease file that exists, is younger than stale_s and whose holder still runs."""
    try:
        return fs.age_s(uri) < stale_s and not holder_is_dead(fs.read_text(uri))
    except Exception:  # removed meanwhile by its owner
        return False


@contextmanager
def read_lease(spark: SparkSession, warehouse: str, key: str) -> Iterator[None]:
    """Hold a read lease on key (layout.night_key(ds) or CACHE_KEY) while the block runs."""
    fs = Fs(spark, warehouse)
    leases_held(fs, warehouse, key)  # sweeps the leases of killed stages (a retry's predecessor)
    lease = f"{lease_dir(warehouse, key)}/{uuid.uuid4().hex}.lease"
    fs.write_text(lease, lock_holder())
    try:
        if _is_live(fs, removal_lock_path(warehouse, key), LOCK_STALE_S):
            raise PublishError(
                f"retention is removing {key} in {warehouse}; retry when it has finished"
            )
        yield
    finally:
        try:
            fs.delete(lease)
        except Exception:  # never hide the block's own outcome; a dead holder's lease expires
            log.warning("could not remove the read lease %s", lease, exc_info=True)


def leases_held(fs: Fs, warehouse: str, key: str) -> bool:
    """Is any live read lease held on key? Leases of dead processes are removed on the way."""
    folder = lease_dir(warehouse, key)
    live = False
    for name in fs.list_names(folder):
        if not name.endswith(".lease"):
            continue
        uri = f"{folder}/{name}"
        if _is_live(fs, uri, LEASE_STALE_S):
            live = True
        elif fs.exists(uri):
            fs.delete(uri)
    return live


@contextmanager
def removal_lock(spark: SparkSession, warehouse: str, key: str) -> Iterator[bool]:
    """True when key may be removed now (no lease, no other remover); locks it meanwhile."""
    fs = Fs(spark, warehouse)
    lock = removal_lock_path(warehouse, key)
    if not try_lock(fs, lock, lock_holder()):
        yield False
        return
    try:
        yield not leases_held(fs, warehouse, key)
    finally:
        fs.delete(lock)
