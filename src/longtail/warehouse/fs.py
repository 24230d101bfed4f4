"""Hadoop's FileSystem API, for the few calls the warehouse needs (`Fs`).

Going through Hadoop (not os/shutil) means the same code publishes to a local disk, HDFS or an
object store; where a local disk allows something Hadoop's local FileSystem does not do
atomically (create-if-absent, replace), the local path is taken directly.

On a local disk the other calls but rename also go to the disk directly (os, hashlib): through
Hadoop each is a py4j round trip, and without Hadoop's native library every file it creates is a
`chmod` process (and its checksum file another), every listed file an `ls -ld`: about 200
processes and 2.7 s of the two tiny nights of the reliability tests. Names are Hadoop's
(`file:/...`); a name Hadoop's Path would read differently (`%`, `?`, `#`, `:`) goes to Hadoop.
Renames stay on Hadoop, which moves a file's checksum file with it. `Fs(..., direct=False)` keeps
every call on Hadoop (HDFS and object stores take that path; the tests run both on a local disk).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from longtail.warehouse.files import replace_local

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class PublishError(RuntimeError):
    """Publishing could not complete; the previously published data is unchanged."""


# A local URI the disk can take directly: an absolute path, bare or `file:`, without characters
# that Hadoop's Path would read differently (escapes, query, fragment); any other goes to Hadoop.
_DIRECT_URI = re.compile(r"(?:file:(?://)?)?(/[^%?#]*)")
_ODD_NAME = re.compile(r"[%?#:\\]")


def _checksum_file(path: str) -> str:
    """Hadoop's checksum file of a local file (ChecksumFileSystem.getChecksumFile)."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.crc")


def _is_checksum_name(name: str) -> bool:
    """Hidden from Hadoop's listings (ChecksumFileSystem's DEFAULT_FILTER)."""
    return name.startswith(".") and name.endswith(".crc")


def _replace_on_disk(local: str, data: bytes, sync: bool = False) -> None:
    """files.replace_local, and the checksum file Hadoop wrote for the bytes replaced removed:
    Hadoop's reader checks a checksum file when there is one."""
    replace_local(Path(local), data, sync=sync)
    with contextlib.suppress(FileNotFoundError):
        os.remove(_checksum_file(local))


def _disk_files(root: str) -> list[str] | None:
    """Fs.list_files of a local folder, named as Hadoop names them (`file:/...`); None when a
    name holds a character Hadoop's Path would read differently, so Hadoop lists it instead."""
    if not os.path.exists(root):
        return []
    if not os.path.isdir(root):
        return [f"file:{root}"]
    out = []
    for folder, dirs, files in os.walk(root, followlinks=True):  # Hadoop follows them too
        if any(_ODD_NAME.search(name) for name in (*dirs, *files)):
            return None
        dirs[:] = [d for d in dirs if not d.startswith(("_", "."))]
        out += [f"file:{folder}/{n}" for n in files if not n.startswith(("_", "."))]
    return sorted(out)


class Fs:
    """Thin wrapper over org.apache.hadoop.fs.FileSystem for the few calls we need."""

    def __init__(self, spark: SparkSession, uri: str, direct: bool = True) -> None:
        self._jvm = spark._jvm  # type: ignore[attr-defined]
        self._gateway = spark.sparkContext._gateway  # type: ignore[attr-defined]
        self._conf = spark._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
        # The class, looked up once: py4j resolves each name of `_jvm.org.apache...` with its
        # own call to the JVM, and a night builds about 1,500 paths.
        self._path_class = self._jvm.org.apache.hadoop.fs.Path
        self._fs = self._path(uri).getFileSystem(self._conf)
        self._on_disk = self._fs.getScheme() == "file"
        self._direct = direct and self._on_disk

    def _path(self, uri: str) -> Any:
        return self._path_class(uri)

    def disk_path(self, uri: str) -> str | None:
        """The local path of uri when calls on it go to the disk directly, else None."""
        return self._disk(uri)

    def _disk(self, uri: str) -> str | None:
        """The local path of uri when this call goes to the disk directly, else None."""
        if not self._direct:
            return None
        match = _DIRECT_URI.fullmatch(uri)
        return os.path.normpath(match.group(1)) if match else None

    def exists(self, uri: str) -> bool:
        local = self._disk(uri)
        if local is not None:
            return os.path.exists(local)
        return bool(self._fs.exists(self._path(uri)))

    def delete(self, uri: str) -> None:
        """uri and everything below it, if it exists (a file's checksum file with it)."""
        local = self._disk(uri)
        if local is None:
            self._fs.delete(self._path(uri), True)
        elif os.path.isdir(local) and not os.path.islink(local):
            shutil.rmtree(local)
        elif os.path.lexists(local):
            os.remove(local)
            with contextlib.suppress(FileNotFoundError):
                os.remove(_checksum_file(local))

    def mkdirs(self, uri: str) -> None:
        local = self._disk(uri)
        if local is not None:
            os.makedirs(local, exist_ok=True)
            return
        self._fs.mkdirs(self._path(uri))

    def rename(self, src: str, dst: str) -> None:
        self.mkdirs(dst.rsplit("/", 1)[0])
        if not self._fs.rename(self._path(src), self._path(dst)):
            raise PublishError(f"could not move {src} to {dst}")

    def qualify(self, uri: str) -> str:
        """uri as the FileSystem names its entries (scheme and authority added)."""
        local = self._disk(uri)
        if local is not None:
            return f"file:{local}"
        return str(self._fs.makeQualified(self._path(uri)).toString())

    def list_files(self, uri: str) -> list[str]:
        """Every data file below uri, sorted; hidden (`.`) and metadata (`_`) entries skipped."""
        local = self._disk(uri)
        if local is not None:
            found = _disk_files(local)
            if found is not None:
                return found
        if not self.exists(uri):
            return []
        out = []
        it = self._fs.listFiles(self._path(uri), True)
        while it.hasNext():
            status = it.next()
            path = status.getPath()
            rel = path.toString()[len(self.qualify(uri)) :]
            if any(part.startswith(("_", ".")) for part in rel.split("/") if part):
                continue
            out.append(path.toString())
        return sorted(out)

    def list_dirs(self, uri: str) -> list[str]:
        if not self.exists(uri):
            return []
        local = self._disk(uri)
        if local is not None:
            if not os.path.isdir(local):
                return []
            with os.scandir(local) as entries:
                return sorted(e.name for e in entries if e.is_dir())
        return sorted(
            s.getPath().getName() for s in self._fs.listStatus(self._path(uri)) if s.isDirectory()
        )

    def list_names(self, uri: str) -> list[str]:
        """Names of the entries directly below uri (files and folders), sorted; Hadoop's
        checksum files are not entries."""
        if not self.exists(uri):
            return []
        local = self._disk(uri)
        if local is not None:
            if not os.path.isdir(local):
                return [os.path.basename(local)]
            return sorted(n for n in os.listdir(local) if not _is_checksum_name(n))
        return sorted(s.getPath().getName() for s in self._fs.listStatus(self._path(uri)))

    def write_text(self, uri: str, text: str) -> None:
        """Write via a temporary name and rename, so a reader never sees half a file."""
        local = self._disk(uri)
        if local is not None:
            _replace_on_disk(local, text.encode("utf-8"))
            return
        tmp = f"{uri}.{uuid.uuid4().hex}.tmp"
        self.mkdirs(uri.rsplit("/", 1)[0])
        self._create(tmp, text)
        if self.exists(uri):
            self.delete(uri)
        self.rename(tmp, uri)

    def replace_text(self, uri: str, text: str) -> None:
        """Write uri so that a reader sees the old text or the new one, never neither.

        write_text deletes, then renames; this renames over the old file in one step: os.replace
        on a local disk, FileContext's rename with OVERWRITE elsewhere (atomic on HDFS; on S3 a
        rename is a copy, as everywhere in this module).
        """
        if self._on_disk:
            _replace_on_disk(self.local_path(uri), text.encode("utf-8"), sync=True)
            return
        folder, name = uri.rsplit("/", 1)
        tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
        self.mkdirs(folder)
        self._create(tmp, text)
        fs_api = self._jvm.org.apache.hadoop.fs
        context = fs_api.FileContext.getFileContext(self._path(uri).toUri(), self._conf)
        options = self._gateway.new_array(fs_api.Options.Rename, 1)
        options[0] = fs_api.Options.Rename.OVERWRITE
        context.rename(self._path(tmp), self._path(uri), options)

    def _create(self, uri: str, text: str) -> None:
        out = self._fs.create(self._path(uri), True)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()

    def local_path(self, uri: str) -> str:
        local = self._disk(uri)
        return local if local is not None else str(self._fs.pathToFile(self._path(uri)).getPath())

    def size(self, uri: str) -> int:
        local = self._disk(uri)
        if local is not None:
            return os.path.getsize(local)
        return int(self._fs.getFileStatus(self._path(uri)).getLen())

    def age_s(self, uri: str) -> float:
        """Seconds since uri was last modified."""
        local = self._disk(uri)
        if local is not None:
            return time.time() - os.stat(local).st_mtime
        return time.time() - self._fs.getFileStatus(self._path(uri)).getModificationTime() / 1000

    def sha256(self, uri: str) -> str:
        """SHA-256 of a file's bytes, read in the JVM (commons-codec ships with Spark) unless
        the file is on the local disk."""
        local = self._disk(uri)
        if local is not None:
            with open(local, "rb") as f:
                return hashlib.file_digest(f, "sha256").hexdigest()
        stream = self._fs.open(self._path(uri))
        try:
            return str(self._jvm.org.apache.commons.codec.digest.DigestUtils.sha256Hex(stream))
        finally:
            stream.close()

    def read_text(self, uri: str) -> str:
        """The file's text exactly as written (UTF-8): a model copied from one night to another
        must keep every byte, its final newline included, so it is read whole, not by lines."""
        local = self._disk(uri)
        if local is not None:
            return Path(local).read_bytes().decode("utf-8")
        stream = self._fs.open(self._path(uri))
        try:
            return bytes(stream.readAllBytes()).decode("utf-8")
        finally:
            stream.close()

    def first_line(self, uri: str) -> str | None:
        """The file's first line, decompressed by the codec its name implies (as Spark's
        readers do: .gz, .bz2, ...), UTF-8 with replacement; None for an empty file."""
        path = self._path(uri)
        stream = self._fs.open(path)
        try:
            codec = self._jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(
                self._conf
            ).getCodec(path)
            source = codec.createInputStream(stream) if codec is not None else stream
            reader = self._jvm.java.io.BufferedReader(
                self._jvm.java.io.InputStreamReader(source, "UTF-8")
            )
            line = reader.readLine()
            return None if line is None else str(line)
        finally:
            stream.close()

    def create_new(self, uri: str, text: str) -> bool:
        """Create uri holding text if it does not exist, atomically; False when it did exist."""
        if self._on_disk:
            # Hadoop's local create(overwrite=False) checks, then opens: two writers can both
            # pass the check. O_EXCL makes create-if-absent atomic on a local disk.
            local = self.local_path(uri)
            os.makedirs(os.path.dirname(local), exist_ok=True)
            try:
                fd = os.open(local, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            return True
        try:
            out = self._fs.create(self._path(uri), False)
        except Exception:  # another writer created it first
            return False
        out.write(bytearray(text.encode("utf-8")))
        out.close()
        return True
