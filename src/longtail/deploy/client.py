"""A small REST client for the deployment's Airflow api-server (stdlib urllib only).

    from longtail.deploy.client import AirflowClient
    api = AirflowClient.from_deployment()            # url and admin credentials of `make up`
    api.get("/api/v2/dags/longtail_nightly")["is_paused"]

Tokens come from the Simple auth manager (`POST /auth/token` with the admin's credentials) and
are renewed once on a 401.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from longtail.deploy.credentials import credentials


class ApiError(RuntimeError):
    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url}: HTTP {status}: {body[:500]}")
        self.status, self.body = status, body


class AirflowClient:
    def __init__(
        self, base_url: str, username: str, password: str, timeout_s: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username, self.password, self.timeout_s = username, password, timeout_s
        self._token: str | None = None

    @classmethod
    def from_deployment(cls, repo: Path | None = None, timeout_s: float = 30.0) -> AirflowClient:
        """The client for this checkout's `make up` (its URL and the admin's password)."""
        creds = credentials(repo)
        return cls(creds["url"], creds["username"], creds["password"], timeout_s)

    def _url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        url = path if path.startswith("http") else f"{self.base_url}/{path.lstrip('/')}"
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        return url

    def _send(
        self, method: str, url: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        text = raw.decode(errors="replace")
        try:
            return status, json.loads(text) if text else None
        except json.JSONDecodeError:
            return status, text

    def token(self, refresh: bool = False) -> str:
        """A bearer token for the admin user (cached)."""
        if self._token is None or refresh:
            url = self._url("/auth/token")
            status, body = self._send(
                "POST", url, {"username": self.username, "password": self.password}
            )
            if status not in (200, 201) or not isinstance(body, dict):
                raise ApiError("POST", url, status, json.dumps(body))
            self._token = str(body["access_token"])
        return self._token

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        auth: bool = True,
        ok: tuple[int, ...] = (200, 201, 204),
    ) -> Any:
        """JSON in, JSON out; ApiError for any status outside ok."""
        url = self._url(path, params)
        status, payload = self._send(method, url, body, self.token() if auth else None)
        if status == 401 and auth:  # expired token: renew once
            status, payload = self._send(method, url, body, self.token(refresh=True))
        if status not in ok:
            text = payload if isinstance(payload, str) else json.dumps(payload)
            raise ApiError(method, url, status, text)
        return payload

    def get(self, path: str, params: Mapping[str, Any] | None = None, auth: bool = True) -> Any:
        return self.request("GET", path, params=params, auth=auth)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body=body)

    def patch(self, path: str, body: Any, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("PATCH", path, body=body, params=params)

    def try_get(self, path: str, auth: bool = True) -> tuple[int, Any]:
        """(HTTP status, JSON body) without raising on a status (e.g. 404 while a DAG is not
        parsed yet)."""
        return self._send("GET", self._url(path), None, self.token() if auth else None)

    def health(self) -> dict[str, Any]:
        """`/api/v2/monitor/health` (no token needed)."""
        return self.get("/api/v2/monitor/health", auth=False)
