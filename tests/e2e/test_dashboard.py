"""The dashboard (GET /) in headless Chromium: a task submitted while the
page is open appears on it, and its status follows the task."""
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
        shot = os.environ.get("FAAS_DASHBOARD_SCREENSHOT")
        if shot and server.kind == "up":
            # make screenshot: refreshes docs/dashboard.png
            browser.screenshot(os.path.join(ROOT, shot))
