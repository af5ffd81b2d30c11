"""The dashboard (GET /) in headless Chromium: a task submitted while the
page is open appears on it, and its status follows the task; the task page
(#/task/<id>), reached from the list and by id, shows the history, every
failed attempt, the traceback, the timings and the result as text, with all
user text escaped; the charts draw what ran; the schedules are listed with
their next tick."""
import datetime
import os

import pytest
import requests

from cdp import Chromium
from conftest import ROOT, client_payloads, serialize


def row(tid):
    return f'document.querySelector(\'tr[data-task-id="{tid}"]\')'


def test_dashboard_shows_a_new_task_live(server):
    (nap,) = client_payloads("def nap(s):\n    import time\n    time.sleep(s)\n    return s", "nap")
    fid = server.register(nap, name="nap_for_the_dashboard")
    with Chromium() as browser:
        browser.navigate(server.url + "/")
        # The page has loaded its state once: the script runs and the
        # dispatcher is listed.
        browser.wait_for("document.getElementById('live').textContent.startsWith('live')")
        browser.wait_for("document.getElementById('nodes').children.length >= 1")
        tid = server.execute(fid, serialize(((1.5,), {})))
        # The new task shows up without a reload, with its function's name...
        browser.wait_for("!!" + row(tid))
        assert "nap_for_the_dashboard" in browser.evaluate(row(tid) + ".textContent")
        # ...and moves to COMPLETED with a duration.
        text = browser.wait_for(f"{row(tid)}.textContent.includes('COMPLETED') && {row(tid)}.textContent")
        assert " s" in text or " ms" in text, text
        assert int(browser.evaluate("Number(document.getElementById('completed').textContent)")) >= 1


XSS = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">"
SHOW = f"""
def show(x):
    print({XSS!r})
    return {{"x": x, "s": {XSS!r}, "t": (1.5, None, b"\\x00")}}
"""
BOOM = f"""
def boom(x):
    raise ValueError({XSS!r})
"""


def post_ok(server, path, body):
    r = server.post(path, body)
    assert r.status_code == 200, r.text
    return r.json()


def visible(sel):
    return f"(() => {{ const e = document.querySelector({sel!r}); return !!e && e.offsetParent !== null; }})()"


def no_xss(browser):
    assert browser.evaluate("window.__xss === undefined"), "a task's text ran as script"
    assert browser.evaluate("document.querySelectorAll('main script, main img').length") == 0


def test_task_page_charts_and_escaping(server):
    (show,) = client_payloads(SHOW, "show")
    show_fn = server.register(show, name=XSS)  # the function's name is user text too
    boom_fn = post_ok(server, "/register_function", {"name": "boom", "source": BOOM})["function_id"]
    twice_fn = post_ok(server, "/register_function", {"name": "twice", "source": "def twice(x):\n    return {'twice': 2 * x}"})["function_id"]
    shown = server.execute(show_fn, serialize(((7,), {})))
    failed = post_ok(server, "/execute_function", {"function_id": boom_fn, "args": [1],
                                                   "retries": {"max": 1, "backoff": "fixed", "base": "100ms", "jitter": False}})["task_id"]
    twice = post_ok(server, "/execute_function", {"function_id": twice_fn, "args": [21]})["task_id"]
    for tid in (shown, failed, twice):
        server.wait_result(tid)

    with Chromium() as browser:
        browser.navigate(server.url + "/")
        browser.wait_for("document.getElementById('live').textContent.startsWith('live')")
        # From the list: each row links to its task's page.
        browser.wait_for(f"!!{row(shown)} && !!{row(shown)}.querySelector('a')")
        browser.evaluate(f"{row(shown)}.querySelector('a').click()")
        browser.wait_for(visible("#task-body") + " && document.getElementById('task-status').textContent === 'COMPLETED'")
        assert browser.evaluate("location.hash") == "#/task/" + shown
        assert browser.evaluate("document.getElementById('task-id').textContent") == shown
        assert XSS in browser.evaluate("document.getElementById('task-fn').textContent")
        kinds = browser.evaluate("[...document.querySelectorAll('#task-history li')].map((li) => li.dataset.kind)")
        assert kinds == ["created", "started", "finished"], kinds
        parts = browser.evaluate("[...document.querySelectorAll('#task-timings span')].map((s) => s.dataset.part)")
        assert "run" in parts, parts
        assert browser.evaluate("document.getElementById('task-timings').getBoundingClientRect().width") > 100
        # The result pickle as text, rendered on the server from its opcodes.
        result = browser.evaluate("document.getElementById('task-result').textContent")
        assert result == "{'x': 7, 's': %r, 't': (1.5, None, b'\\x00')}" % XSS, result
        assert "never unpickled" in browser.evaluate("document.getElementById('task-result-note').textContent")
        assert XSS in browser.evaluate("document.getElementById('task-stdout').textContent")
        assert browser.evaluate("document.getElementById('errors-box').hidden")
        no_xss(browser)

        # By id, from the search box: the failed task, each attempt's error,
        # the traceback.
        browser.evaluate(f"document.getElementById('find-id').value = {failed!r}; document.getElementById('find').requestSubmit()")
        browser.wait_for("document.getElementById('task-status').textContent === 'FAILED' && "
                         f"document.getElementById('task-id').textContent === {failed!r}")
        kinds = browser.evaluate("[...document.querySelectorAll('#task-history li')].map((li) => li.dataset.kind)")
        assert kinds == ["created", "started", "error", "error", "finished"], kinds
        errors = browser.evaluate("[...document.querySelectorAll('#task-errors tr')].map((tr) => tr.textContent)")
        assert len(errors) == 2 and all("USER_EXCEPTION" in e and XSS in e for e in errors), errors
        tb = browser.evaluate("document.getElementById('task-traceback').textContent")
        assert "Traceback" in tb and "ValueError" in tb and XSS in tb, tb
        assert "ValueError(" in browser.evaluate("document.getElementById('task-result').textContent")
        no_xss(browser)

        # A JSON call's result is its JSON, pretty-printed.
        browser.evaluate(f"location.hash = '#/task/{twice}'")
        browser.wait_for("document.getElementById('task-status').textContent === 'COMPLETED' && "
                         f"document.getElementById('task-id').textContent === {twice!r}")
        assert browser.evaluate("document.getElementById('task-result').textContent") == '{\n  "twice": 42\n}'

        # An unknown id says so.
        browser.evaluate("document.getElementById('find-id').value = '00000000-0000-4000-8000-000000000000'; "
                         "document.getElementById('find').requestSubmit()")
        browser.wait_for("document.getElementById('task-error').textContent.startsWith('No task')")
        if os.environ.get("FAAS_DASHBOARD_SCREENSHOT") and server.kind == "up":
            browser.evaluate(f"location.hash = '#/task/{failed}'")
            browser.wait_for(f"document.getElementById('task-id').textContent === {failed!r} && "
                             "document.getElementById('task-status').textContent === 'FAILED'")
            browser.screenshot(os.path.join(ROOT, "docs", "dashboard-task.png"))

        # Back to the overview: the charts draw what ran, the queue depth
        # per tenant is listed, and the schedules section (GET /schedules is
        # always there now) says there is none yet.
        browser.evaluate("location.hash = '#/'")
        browser.wait_for(visible("#overview"))
        for chart in ("throughput", "latency", "failures", "queue"):
            browser.wait_for(f"Number(document.getElementById('chart-{chart}').dataset.drawn) > 0", timeout=40)
        assert browser.evaluate("document.querySelectorAll('#chart-throughput rect').length") >= 1
        assert browser.evaluate("document.querySelectorAll('#chart-latency polyline').length") == 3
        assert "USER_EXCEPTION" in browser.evaluate("document.getElementById('legend-failures').textContent")
        assert browser.evaluate(visible("#schedules-box") + " && " + visible("#schedules-empty"))
        assert browser.evaluate("document.querySelectorAll('#schedules tr').length") == 0
        assert browser.evaluate("document.getElementById('tenants-empty').hidden === false || "
                                "document.querySelectorAll('#tenants tr').length > 0")
        no_xss(browser)
        shot = os.environ.get("FAAS_DASHBOARD_SCREENSHOT")
        if shot and server.kind == "up":
            # make screenshot: refreshes docs/dashboard.png
            browser.call("Emulation.setDeviceMetricsOverride", width=1280, height=1500, deviceScaleFactor=1, mobile=False)
            browser.screenshot(os.path.join(ROOT, shot))


def schedule_row(sid):
    return f'document.querySelector(\'#schedules tr[data-schedule-id="{sid}"]\')'


def cells(browser, sid):
    return browser.evaluate(f"[...{schedule_row(sid)}.children].map((td) => td.textContent)")


def test_schedules_listed_with_next_tick(server):
    fid = post_ok(server, "/register_function", {"name": "tick", "source": "def tick(n=0):\n    return n"})["function_id"]
    # Ticks far enough away that none fires while the page is looked at: a
    # cron schedule (next 1 January, Paris time) named with markup, an
    # hourly interval, and a daily cron schedule, paused.
    cron = post_ok(server, "/schedules", {"function_id": fid, "cron": "0 0 1 1 *", "timezone": "Europe/Paris",
                                          "name": XSS, "args": [1]})
    every = post_ok(server, "/schedules", {"function_id": fid, "every": "1h", "name": "hourly", "args": [2]})
    daily = post_ok(server, "/schedules", {"function_id": fid, "cron": "@daily", "name": "paused daily"})
    paused = post_ok(server, f"/schedules/{daily['schedule_id']}/pause", {})
    assert paused["paused"] is True and paused["next_tick"] is None, paused
    for sc in (cron, every):
        assert sc["next_tick"] and not sc["paused"], sc

    with Chromium() as browser:
        browser.navigate(server.url + "/")
        browser.wait_for("document.getElementById('live').textContent.startsWith('live')")
        ids = [cron["schedule_id"], every["schedule_id"], daily["schedule_id"]]
        browser.wait_for(" && ".join("!!" + schedule_row(sid) for sid in ids), timeout=20)
        assert browser.evaluate(visible("#schedules-box")) and not browser.evaluate(visible("#schedules-empty"))
        # Oldest first, as GET /schedules lists them.
        order = browser.evaluate("[...document.querySelectorAll('#schedules tr')].map((tr) => tr.dataset.scheduleId)")
        assert order == ids, order

        for sc, when in ((cron, "cron 0 0 1 1 * (Europe/Paris)"), (every, "every 1h0m0s")):
            name, function, shown_when, tick, state, created = cells(browser, sc["schedule_id"])
            assert name == sc["name"] and function == fid and shown_when == when and state == "active" and created == "0", \
                cells(browser, sc["schedule_id"])
            # The next tick is the API's (the page keeps it as given), shown
            # as a local time with how long until it.
            iso = browser.evaluate(f"{schedule_row(sc['schedule_id'])}.children[3].dataset.nextTick")
            assert iso == sc["next_tick"], (iso, sc["next_tick"])
            local = browser.evaluate(f"new Date({sc['next_tick']!r}).toLocaleString()")
            assert tick.startswith(local) and "(in " in tick, (tick, local)
        # The interval's first tick is an hour after its creation; the cron
        # one is midnight in Paris on the next 1 January.
        assert abs(ms(every["next_tick"]) - ms(every["created_at"]) - 3600_000) < 2, every
        nxt = datetime.datetime.fromisoformat(cron["next_tick"].replace("Z", "+00:00"))
        assert (nxt.month, nxt.day) in ((12, 31), (1, 1)) and nxt.minute == 0, cron["next_tick"]

        name, _, shown_when, tick, state, _ = cells(browser, daily["schedule_id"])
        assert (name, shown_when, tick, state) == ("paused daily", "cron @daily", "–", "paused"), cells(browser, daily["schedule_id"])
        assert browser.evaluate(f"{schedule_row(daily['schedule_id'])}.children[3].dataset.nextTick") == ""

        # The name with markup is text, not HTML.
        assert browser.evaluate(f"{schedule_row(cron['schedule_id'])}.children[0].textContent") == XSS
        assert browser.evaluate(f"{schedule_row(cron['schedule_id'])}.children[0].children.length") == 0
        no_xss(browser)

        # Resumed, the paused one gets a next tick on the next refresh; the
        # deleted ones go.
        assert server.post(f"/schedules/{daily['schedule_id']}/resume", {}).status_code == 200
        for sc in (cron, every):
            r = requests.delete(server.url + "/schedules/" + sc["schedule_id"], timeout=30)
            assert r.status_code == 200, r.text
        browser.wait_for(f"!{schedule_row(cron['schedule_id'])} && !{schedule_row(every['schedule_id'])} && "
                         f"{schedule_row(daily['schedule_id'])}.children[4].textContent === 'active' && "
                         f"{schedule_row(daily['schedule_id'])}.children[3].dataset.nextTick !== ''", timeout=20)
        no_xss(browser)
    r = requests.delete(server.url + "/schedules/" + daily["schedule_id"], timeout=30)
    assert r.status_code == 200, r.text


def ms(text):
    return round(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
