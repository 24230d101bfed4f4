"""Hadoop's FileSystem API, for the few calls the warehouse needs (`Fs`).

Going through Hadoop (not os/shutil) means the same code publishes to a local disk, HDFS or an
object store; where a local disk allows something Hadoop's local FileSystem does not do
atomically (create-if-absent, replace), the local path is taken directly.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from longtail.warehouse.files import replace_local

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class PublishError(RuntimeError):
    """Publishing could not complete; the previously published data is unchanged."""


class Fs:
    """Thin wrapper over org.apache.hadoop.fs.FileSystem for the few calls we need."""

    def __init__(self, spark: SparkSession, uri: str) -> None:
        self._jvm = spark._jvm  # type: ignore[attr-defined]
        self._gateway = spark.sparkContext._gateway  # type: ignore[attr-defined]
        self._conf = spark._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
        # The class, looked up once: py4j resolves each name of `_jvm.org.apache...` with its
        # own call to the JVM, and a night builds about 1,500 paths.
        self._path_class = self._jvm.org.apache.hadoop.fs.Path
        self._fs = self._path(uri).getFileSystem(self._conf)

    def _path(self, uri: str) -> Any:
        return self._path_class(uri)

    def exists(self, uri: str) -> bool:
        return bool(self._fs.exists(self._path(uri)))

    def delete(self, uri: str) -> None:
        self._fs.delete(self._path(uri), True)

    def mkdirs(self, uri: str) -> None:
        self._fs.mkdirs(self._path(uri))

    def rename(self, src: str, dst: str) -> None:
        self.mkdirs(dst.rsplit("/", 1)[0])
        if not self._fs.rename(self._path(src), self._path(dst)):
            raise PublishError(f"could not move {src} to {dst}")

    def qualify(self, uri: str) -> str:
        """uri as the FileSystem names its entries (scheme and authority added)."""
        return str(self._fs.makeQualified(self._path(uri)).toString())

    def list_files(self, uri: str) -> list[str]:
        """Every data file below uri, sorted; hidden (`.`) and metadata (`_`) entries skipped."""
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
        return sorted(
            s.getPath().getName() for s in self._fs.listStatus(self._path(uri)) if s.isDirectory()
        )

    def list_names(self, uri: str) -> list[str]:
        """Names of the entries directly below uri (files and folders), sorted."""
        if not self.exists(uri):
            return []
        return sorted(s.getPath().getName() for s in self._fs.listStatus(self._path(uri)))

    def write_text(self, uri: str, text: str) -> None:
        """Write via a temporary name and rename, so a reader never sees half a file."""
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
        if self._fs.getScheme() == "file":
            replace_local(Path(self.local_path(uri)), text.encode("utf-8"), sync=True)
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
        return str(self._fs.pathToFile(self._path(uri)).getPath())

    def size(self, uri: str) -> int:
        return int(self._fs.getFileStatus(self._path(uri)).getLen())

    def age_s(self, uri: str) -> float:
        """Seconds since uri was last modified."""
        return time.time() - self._fs.getFileStatus(self._path(uri)).getModificationTime() / 1000

    def sha256(self, uri: str) -> str:
        """SHA-256 of a file's bytes, read in the JVM (commons-codec ships with Spark)."""
        stream = self._fs.open(self._path(uri))
        try:
            return str(self._jvm.org.apache.commons.codec.digest.DigestUtils.sha256Hex(stream))
        finally:
            stream.close()

    def read_text(self, uri: str) -> str:
        """The file's text exactly as written (UTF-8): a model copied from one night to another
        must keep every byte, its final newline included, so it is read whole, not by lines."""
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
        path = self._path(uri)
        if self._fs.getScheme() == "file":
            # Hadoop's local create(overwrite=False) checks, then opens: two writers can both
            # pass the check. O_EXCL makes create-if-absent atomic on a local disk.
            local = self._fs.pathToFile(path).getPath()
            os.makedirs(os.path.dirname(local), exist_ok=True)
            try:
                fd = os.open(local, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            return True
        try:
            out = self._fs.create(path, False)
        except Exception:  # another writer created it first
            return False
        out.write(bytearray(text.encode("utf-8")))
        out.close()
        return True
