"""What a user does in the Airflow 3 UI, in headless Chromium, against the real deployment.

Log in with the admin user (Simple auth manager's form), open `longtail_nightly`, trigger a run
with the `ds` param filled in the params form, backfill nights from the same Trigger dialog (its
dry run read first), then watch the DAG's runs list until the runs succeed. The long variant
(LONGTAIL_LONG_TESTS=1) submits both forms (a manual run and a two-night backfill). By default
both filled forms are closed unsubmitted (REST confirms they created nothing) and the runs list
is watched for the REST test's night, which runs meanwhile: one DAG run on the small machine
instead of two. The REST API and the warehouse confirm what the UI showed. Every step leaves a
screenshot under `<artifacts>/browser/`, kept after the test.

Selectors are what a user reads: roles and accessible names (`get_by_role`, `get_by_label`,
`get_by_text`, placeholders), no CSS classes. The only test id is Airflow's own
`datetime-input` (the From/To pickers of the backfill form, which have no accessible name).
"""

from __future__ import annotations

import re
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import DAG_ID, RUN_TIMEOUT_S, Deployed, Triggered, no_backfill_running

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.deployment]

# Between two looks at the runs list the page is left blank: the UI polls and re-renders every
# few seconds while runs are active, CPU the Spark jobs need on a small machine.
RELOAD_EVERY_S = 30
# how the runs list labels a run's state (the UI's English strings, common.json `states`)
RUN_STATE_LABELS = {
    "success": "Success",
    "failed": "Failed",
    "running": "Running",
    "queued": "Queued",
}


class Shots:
    """Numbered screenshots of the page: <artifacts>/browser/NN-name.png."""

    def __init__(self, page: Any, folder: Path) -> None:
        self.page, self.folder, self.n = page, folder, 0
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()

    def __call__(self, name: str, full_page: bool = False) -> Path:
        self.n += 1
        path = self.folder / f"{self.n:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


def _on_failure(shots: Shots, step: str, exc: BaseException) -> None:
    try:
        path = shots(f"failed-{step}", full_page=True)
    except Exception as shot_exc:  # the browser itself may be gone
        path = f"(no screenshot: {shot_exc})"
    pytest.fail(f"UI step {step!r} failed: {exc}\nscreenshot: {path}\nurl: {shots.page.url}")


def _param_input(dialog: Any, page: Any, name: str) -> Any:
    """The input of one DAG param in the trigger form: the field group labelled by the param
    name (the label's `for` does not point at the input, so get_by_label cannot find it)."""
    group = dialog.get_by_role("group").filter(has=page.get_by_text(name, exact=True))
    return group.get_by_role("textbox")


def _pick_datetime(dialog: Any, page: Any, label: str, day: str, hhmm: str) -> None:
    """Backfill From/To: open the picker, type the date (YYYY/MM/DD) and time, close it."""
    group = dialog.get_by_role("group").filter(has=page.get_by_text(label, exact=True))
    group.get_by_test_id("datetime-input").click()
    picker = page.get_by_role("dialog").filter(has=page.get_by_placeholder("YYYY/MM/DD"))
    picker.get_by_placeholder("YYYY/MM/DD").fill(day.replace("-", "/"))
    picker.get_by_placeholder("HH:mm").fill(hhmm)
    page.keyboard.press("Escape")  # closes the picker only, the Trigger dialog stays
    picker.wait_for(state="detached")


def _states_in_ui(page: Any, run_ids: list[str]) -> dict[str, str]:
    """Each run's state as its row in the runs list shows it ('?' when the row is absent)."""
    states = {}
    for run_id in run_ids:
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name=run_id, exact=True))
        if row.count() == 0:
            states[run_id] = "?"
            continue
        states[run_id] = "?"
        for state, label in RUN_STATE_LABELS.items():
            if row.first.get_by_role("cell", name=label, exact=True).count():
                states[run_id] = state
                break
    return states


def test_trigger_and_backfill_in_the_ui(
    deployed: Deployed, rest_triggered: Triggered, browser_page: Any, long_tests: bool
) -> None:
    """`rest_triggered` starts the REST test's night now: the long variant's runs share the
    cluster with it; by default it is the run this test watches in the UI."""
    page = browser_page
    shots = Shots(page, deployed.artifacts / "browser")
    ui = deployed.ui_url.rstrip("/")
    manual_ds = deployed.day(3)
    # The schedule is "30 1 * * *" with data intervals: the run whose ds (its data interval's
    # start, its logical date) is D has logical date D 01:30 UTC. Backfill takes the runs whose
    # logical date lies in [From, To]: From = first 00:00, To = last 23:59 selects first..last.
    first, last = (deployed.day(5) if long_tests else deployed.day(4)), deployed.day(4)
    n_backfill = (date.fromisoformat(last) - date.fromisoformat(first)).days + 1
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    step = "login"
    manual_id: str | None = None
    backfill: dict[str, Any] = {}
    try:
        # 1. log in
        page.goto(ui + "/")
        page.wait_for_url(re.compile(r"/auth/login"))
        page.get_by_label("Username").fill(deployed.username)
        page.get_by_label("Password").fill(deployed.password)
        shots("login-form")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/auth/login" not in url)
        page.get_by_role("heading", name="Welcome").wait_for()
        shots("home")
        timings[step] = time.monotonic() - t0

        # 2. open the DAG from the Dags list
        step = "open-dag"
        page.get_by_role("link", name="Dags", exact=True).first.click()
        page.get_by_role("link", name=DAG_ID, exact=True).click()
        page.wait_for_url(re.compile(rf"/dags/{DAG_ID}$"))
        page.get_by_role("heading", name=DAG_ID, exact=True).wait_for()
        shots("dag")
        timings[step] = time.monotonic() - t0

        # 3. one run with ds filled in the params form: triggered in the long variant, else the
        #    filled form is closed unsubmitted (the REST test's night already runs beside us)
        step = "trigger"
        page.get_by_role("button", name="Trigger Dag").click()
        dialog = page.get_by_role("dialog").filter(
            has=page.get_by_role("heading", name=f"Trigger Dag - {DAG_ID}")
        )
        dialog.get_by_role("radio", name="Single Run").check(force=True)
        ds_input = _param_input(dialog, page, "ds")
        ds_input.fill(manual_ds)  # an <input type=date>: Playwright fills it as YYYY-MM-DD
        assert ds_input.input_value() == manual_ds
        shots("trigger-form", full_page=True)
        if long_tests:
            with page.expect_response(
                lambda r: r.request.method == "POST"
                and r.url.endswith(f"/api/v2/dags/{DAG_ID}/dagRuns")
            ) as posted:
                dialog.get_by_role("button", name="Trigger", exact=True).click()
            assert posted.value.ok, posted.value.text()
            manual = posted.value.json()
            manual_id = manual["dag_run_id"]
            assert manual["conf"]["ds"] == manual_ds, manual["conf"]
            page.wait_for_url(re.compile(r"/runs/"))
            page.get_by_role("heading", name=manual_id, exact=True).wait_for()
            shots("triggered-run")
        else:
            page.keyboard.press("Escape")  # a user closing the dialog unsubmitted
            dialog.wait_for(state="detached")
        timings[step] = time.monotonic() - t0

        # 4. backfill from the same Trigger dialog: two nights, submitted in the long variant;
        #    else one night, its dry run read and the form closed unsubmitted
        step = "backfill"
        no_backfill_running(deployed)  # Airflow allows one backfill of a DAG at a time
        page.goto(f"{ui}/dags/{DAG_ID}")
        page.get_by_role("button", name="Trigger Dag").click()
        trigger = page.get_by_role("dialog").filter(
            has=page.get_by_role("heading", name=f"Trigger Dag - {DAG_ID}")
        )
        trigger.wait_for()
        # the Backfill card, clicked where a user clicks it: its visible text (its radio input is
        # visually hidden, and while the dialog opens it can lie outside the viewport)
        trigger.get_by_text("Run this Dag for a range of dates").click()
        dialog = page.get_by_role("dialog").filter(
            has=page.get_by_role("heading", name=f"Run Backfill - {DAG_ID}")
        )
        dialog.wait_for()
        _pick_datetime(dialog, page, "From", first, "00:00")
        _pick_datetime(dialog, page, "To", last, "23:59")
        # the form's dry run says what the range selects before anything is created
        expected_text = "1 run" if n_backfill == 1 else f"{n_backfill} runs"
        dialog.get_by_text(f"{expected_text} will be triggered").wait_for()
        shots("backfill-form", full_page=True)
        if long_tests:
            with page.expect_response(
                lambda r: r.request.method == "POST" and r.url.endswith("/api/v2/backfills")
            ) as posted:
                dialog.get_by_role("button", name="Run Backfill").click()
            assert posted.value.ok, posted.value.text()
            backfill = posted.value.json()
            shots("backfill-submitted")
        else:
            page.keyboard.press("Escape")
        dialog.wait_for(state="detached")
        timings[step] = time.monotonic() - t0
    except Exception as exc:
        _on_failure(shots, step, exc)

    nights_wanted = {first, last}
    if long_tests:
        backfill_ids = _backfill_runs(deployed, nights_wanted)
        run_ids = [manual_id, *backfill_ids]
    else:  # the closed forms created nothing: watch the REST test's night instead
        backfill_ids = []
        run_ids = [rest_triggered.run_id]
        runs = deployed.api.get(f"/api/v2/dags/{DAG_ID}/dagRuns", {"limit": 100})["dag_runs"]
        assert not [r for r in runs if (r.get("conf") or {}).get("ds") == manual_ds], runs
        assert not [r for r in runs if r["run_type"] == "backfill"], runs

    # 5. watch the runs list until the runs finish
    states = _wait_in_ui(page, shots, deployed, f"{ui}/dags/{DAG_ID}/runs", run_ids, t0)
    shots("runs-finished", full_page=True)
    timings["runs"] = time.monotonic() - t0
    page.goto(f"{ui}/dags/{DAG_ID}")
    page.get_by_role("heading", name=DAG_ID, exact=True).wait_for()
    shots("grid")

    # REST agrees (naming a failed run's failed tasks), and the nights are published
    failed = [r for r, state in states.items() if state == "failed"]
    deployed.wait_for_runs(failed or run_ids, timeout_s=60)
    assert states == dict.fromkeys(run_ids, "success"), (states, shots.folder)
    published = set()
    if long_tests:
        run = deployed.run_state(manual_id)
        assert run["run_type"] == "manual" and run["conf"]["ds"] == manual_ds, run
        published.add(manual_ds)
        assert datetime.fromisoformat(backfill["from_date"]).date() == date.fromisoformat(first)
        for run_id in backfill_ids:
            run = deployed.run_state(run_id)
            assert run["run_type"] == "backfill" and run["state"] == "success", run
            published.add(run["data_interval_start"][:10])
        assert published == {manual_ds, *nights_wanted}
    else:
        published.add(rest_triggered.ds)
    for ds in sorted(published):
        partition = deployed.warehouse / "recommendations" / f"ds={ds}"
        assert partition.is_dir(), f"{partition} missing"
        assert (partition / "_manifest.json").exists(), partition
    print(f"browser test timings (s since start): { {k: round(v) for k, v in timings.items()} }")


def _wait_in_ui(
    page: Any, shots: Shots, deployed: Deployed, runs_url: str, run_ids: list[str], t0: float
) -> dict[str, str]:
    """Reload the DAG's runs list until every run shows success, or one shows failed.

    `Deployed.wait_for_runs` gives a run RUN_TIMEOUT_S; here each of the runs gets that much:
    on a small machine they share the same cores (the manual run and the backfill's first night
    run side by side, its second night only after its first)."""
    budget_s = RUN_TIMEOUT_S * len(run_ids)
    deadline = time.monotonic() + budget_s
    states: dict[str, str] = {}
    errors = 0
    while True:
        try:
            page.goto(runs_url)
            page.get_by_role("heading", name=re.compile(r"\d+ Dag Runs?")).wait_for()
            page.get_by_role("link", name=run_ids[0], exact=True).wait_for()
            seen = _states_in_ui(page, run_ids)
        except Exception as exc:  # a slow api-server on a loaded machine: reload, a few times
            errors += 1
            if errors > 5:
                _on_failure(shots, "wait", exc)
            print(f"runs list did not load ({exc}); retrying")
            time.sleep(RELOAD_EVERY_S)
            continue
        finished = [r for r, s in seen.items() if s in ("success", "failed")]
        if seen != states:
            elapsed = time.monotonic() - t0
            print(f"{elapsed:6.0f}s runs in the UI: {seen}")
            shots(f"runs-at-{elapsed:.0f}s", full_page=True)
            states = seen
        if len(finished) == len(run_ids) or "failed" in seen.values():
            return states
        if time.monotonic() > deadline:
            path = shots("runs-timeout", full_page=True)
            rest = {r: deployed.run_state(r)["state"] for r in run_ids}
            pytest.fail(
                f"runs not finished in the UI after {budget_s}s: {states} (REST: {rest})"
                f"\nscreenshot: {path}"
            )
        page.goto("about:blank")
        time.sleep(RELOAD_EVERY_S)


def _backfill_runs(deployed: Deployed, nights: set[str], timeout_s: float = 300) -> list[str]:
    """The backfill's runs, one per night (ds = the data interval's start date)."""
    deadline = time.monotonic() + timeout_s
    found: dict[str, str] = {}
    while time.monotonic() < deadline:
        page = deployed.api.get(
            f"/api/v2/dags/{DAG_ID}/dagRuns", {"run_type": "backfill", "limit": 100}
        )
        found = {
            r["data_interval_start"][:10]: r["dag_run_id"]
            for r in page["dag_runs"]
            if r["data_interval_start"] and r["data_interval_start"][:10] in nights
        }
        if set(found) == nights:
            return [found[d] for d in sorted(nights)]
        time.sleep(3)
    pytest.fail(f"the backfill created runs for {sorted(found)}, not {sorted(nights)}")
