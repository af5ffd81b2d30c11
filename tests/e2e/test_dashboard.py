"""The dashboard (GET /) in headless Chromium: a task submitted while the
page is open appears on it, and its status follows the task; the task page
(#/task/<id>), reached from the list and by id, shows the history, every
failed attempt, the traceback, the timings and the result as text, with all
user text escaped; the charts draw what ran."""
import os

import pytest

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
        # per tenant is listed, and the schedules section stays hidden on a
        # server without GET /schedules.
        browser.evaluate("location.hash = '#/'")
        browser.wait_for(visible("#overview"))
        for chart in ("throughput", "latency", "failures", "queue"):
            browser.wait_for(f"Number(document.getElementById('chart-{chart}').dataset.drawn) > 0", timeout=40)
        assert browser.evaluate("document.querySelectorAll('#chart-throughput rect').length") >= 1
        assert browser.evaluate("document.querySelectorAll('#chart-latency polyline').length") == 3
        assert "USER_EXCEPTION" in browser.evaluate("document.getElementById('legend-failures').textContent")
        assert browser.evaluate("document.getElementById('schedules-box').hidden")
        assert browser.evaluate("document.getElementById('tenants-empty').hidden === false || "
                                "document.querySelectorAll('#tenants tr').length > 0")
        no_xss(browser)
        shot = os.environ.get("FAAS_DASHBOARD_SCREENSHOT")
        if shot and server.kind == "up":
            # make screenshot: refreshes docs/dashboard.png
            browser.call("Emulation.setDeviceMetricsOverride", width=1280, height=1500, deviceScaleFactor=1, mobile=False)
            browser.screenshot(os.path.join(ROOT, shot))
