"""The Python client's schedules against the real server:
client.schedule(fn, *args, cron=/every=, **kwargs) and the handle's
pause/resume/delete, client.schedules(), errors. Remote functions use no
`assert` (pytest rewrites it into helpers the sandbox lacks)."""
import datetime
import time
import zoneinfo

import pytest

from client_fixtures import client, server  # noqa: F401  (fixtures; also puts clients/python on sys.path)

import wasmfaas  # noqa: E402


def add(a, b=0):
    return a + b


def wait_until(pred, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError("not within %ss" % timeout)


def test_every_second_runs_the_call_and_pauses(client):
    sched = client.schedule(add, 40, b=2, every=1, name="answer")
    assert isinstance(sched, wasmfaas.ScheduleHandle)
    assert sched.name == "answer" and not sched.paused and sched.tasks_created == 0
    assert sched.next_tick > datetime.datetime.now(datetime.timezone.utc)
    assert sched.last_task() is None
    wait_until(lambda: sched.refresh().tasks_created >= 2)
    assert sched.last_task().result(timeout=60) == 42
    sched.pause()
    assert sched.paused and sched.next_tick is None
    n = sched.tasks_created
    time.sleep(1.5)
    assert sched.refresh().tasks_created == n
    sched.resume()
    assert not sched.paused and sched.next_tick is not None
    assert sched.schedule_id in [s.schedule_id for s in client.schedules()]
    sched.delete()
    with pytest.raises(wasmfaas.ScheduleNotFound):
        sched.refresh()
    with pytest.raises(wasmfaas.ScheduleNotFound):
        client.get_schedule(sched.schedule_id)


def test_cron_and_timedelta(client):
    fn = client.register(add)
    nightly = client.schedule(fn, 1, cron="30 3 * * *", timezone="Europe/Paris", missed="skip", retries=2)
    tick = nightly.next_tick.astimezone(zoneinfo.ZoneInfo("Europe/Paris"))
    assert (tick.hour, tick.minute) == (3, 30), tick
    assert nightly.info["missed"] == "skip" and nightly.info["retries"]["max"] == 2
    again = client.get_schedule(nightly.schedule_id)
    assert again.info["cron"] == "30 3 * * *" and again.info["timezone"] == "Europe/Paris"
    hourly = client.schedule(fn, 2, every=datetime.timedelta(hours=1))
    assert hourly.info["every"] == "1h0m0s"
    for s in (nightly, hourly):
        s.delete()


def test_schedule_errors(client):
    with pytest.raises(ValueError):
        client.schedule(add, 1)
    with pytest.raises(ValueError):
        client.schedule(add, 1, cron="* * * * *", every=5)
    with pytest.raises(ValueError):
        client.schedule(add, 1, every=5, timezone="UTC")
    with pytest.raises(wasmfaas.BadRequest, match="cron"):
        client.schedule(add, 1, cron="61 * * * *")
    with pytest.raises(wasmfaas.BadRequest, match="every"):
        client.schedule(add, 1, every=0.1)
    with pytest.raises(wasmfaas.ScheduleNotFound):
        client.get_schedule("00000000-0000-4000-8000-000000000000")
