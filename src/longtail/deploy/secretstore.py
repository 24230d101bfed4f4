"""The deployment's generated secrets, kept outside the repository.

`${XDG_CONFIG_HOME:-~/.config}/longtail/<hash of the repo's absolute path>/secrets.json`, mode
0600 in a 0700 folder, generated on first use and reused after: the metadata DB's password, the
Airflow admin's password, the JWT secret, the API secret key and the Fernet key. The Simple auth
manager's password file (`simple_auth_manager_passwords.json`, derived from it) sits beside it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

FILE = "secrets.json"
PASSWORDS_FILE = "simple_auth_manager_passwords.json"


class SecretsError(RuntimeError):
    pass


@dataclass(frozen=True)
class Secrets:
    pg_password: str
    admin_password: str
    jwt_secret: str
    api_secret_key: str
    fernet_key: str

    @classmethod
    def generate(cls) -> Secrets:
        return cls(
            pg_password=secrets.token_urlsafe(24),
            admin_password=secrets.token_urlsafe(18),
            jwt_secret=secrets.token_hex(32),
            api_secret_key=secrets.token_hex(16),
            fernet_key=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        )


def repo_key(repo: Path) -> str:
    """A short, stable name for one checkout: the first 12 hex digits of its path's SHA-256."""
    return hashlib.sha256(str(repo.resolve()).encode()).hexdigest()[:12]


def secrets_dir(repo: Path, environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = Path(env.get("XDG_CONFIG_HOME") or Path(env.get("HOME") or Path.home()) / ".config")
    folder = (base / "longtail" / repo_key(repo)).absolute()
    repo = repo.resolve()
    if folder.resolve() == repo or repo in folder.resolve().parents:
        raise SecretsError(f"refusing to keep secrets inside the repository: {folder}")
    return folder


def _write_private(path: Path, text: str) -> None:
    """Write text to path atomically, readable by its owner only (0600)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _private_dir(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if stat.S_IMODE(folder.stat().st_mode) != 0o700:
        os.chmod(folder, 0o700)


def load_or_create(folder: Path) -> Secrets:
    """The secrets in folder/secrets.json; generated once (and any missing one added)."""
    _private_dir(folder)
    path = folder / FILE
    stored: dict[str, str] = {}
    if path.exists():
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            os.chmod(path, 0o600)  # readable by others: tighten before use
        try:
            stored = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise SecretsError(f"{path}: not valid JSON ({exc}); remove it to regenerate") from exc
    fresh = asdict(Secrets.generate())
    names = [f.name for f in fields(Secrets)]
    values = {n: stored.get(n) or fresh[n] for n in names}
    if any(not stored.get(n) for n in names):
        _write_private(path, json.dumps({**stored, **values}, indent=2) + "\n")
    return Secrets(**values)


def load(folder: Path) -> Secrets:
    path = folder / FILE
    if not path.exists():
        raise SecretsError(f"no secrets at {path}: run `make up` first")
    data = json.loads(path.read_text())
    return Secrets(**{f.name: data[f.name] for f in fields(Secrets)})


def write_passwords_file(folder: Path, username: str, password: str) -> Path:
    """The Simple auth manager's password file ({user: password}), 0600, beside secrets.json."""
    path = folder / PASSWORDS_FILE
    wanted = {username: password}
    try:
        if json.loads(path.read_text()) == wanted and not stat.S_IMODE(path.stat().st_mode) & 0o077:
            return path
    except (OSError, ValueError):
        pass
    _write_private(path, json.dumps(wanted) + "\n")
    return path
