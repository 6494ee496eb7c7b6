"""``GET /v1/runs``: the caller's recent runs, newest first, never another key's."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._server import run_server

pytestmark = pytest.mark.e2e


def test_each_key_lists_only_its_own_runs_newest_first(tmp_path: Path) -> None:
    with run_server(tmp_path, {"SCOPESTREAM_API_KEYS": "key-alice,key-bob"}) as server:
        alice = {"Authorization": "Bearer key-alice"}
        bob = {"Authorization": "Bearer key-bob"}
        with server.client() as client:
            mine = [
                client.post(
                    "/v1/runs", json={"producer": "echo", "input": {"text": f"a{i}"}}, headers=alice
                ).json()["id"]
                for i in range(3)
            ]
            live = client.post(
                "/v1/runs",
                json={"producer": "synthetic", "input": {"ask_at": 1}, "background": True},
                headers=bob,
            ).json()
            listed = client.get("/v1/runs", headers=alice).json()
            assert listed["object"] == "list"
            assert [run["id"] for run in listed["data"]] == mine[::-1]
            assert {run["status"] for run in listed["data"]} == {"completed"}
            view = client.get(f"/v1/runs/{mine[2]}", headers=alice).json()
            assert view.pop("output")["text"] == "a2"
            assert listed["data"][0] == view  # the run, without its output
            theirs = client.get("/v1/runs", headers=bob).json()["data"]
            assert [run["id"] for run in theirs] == [live["id"]]  # a live run is listed too
            limited = client.get("/v1/runs", params={"limit": 2}, headers=alice).json()["data"]
            assert [run["id"] for run in limited] == mine[:0:-1]
            assert client.get("/v1/runs").status_code == 401
            for limit in ("0", "101", "-1", "ten"):
                response = client.get("/v1/runs", params={"limit": limit}, headers=alice)
                assert response.status_code == 400, limit
                error = response.json()["error"]
                assert error["code"] == "invalid_request"
                assert error["fields"][0]["field"] == "limit"
