"""Schedules against the real binary: a schedule ticking every second with
three dispatchers makes exactly one task per tick (10 ticks, 10 tasks, each
with the id of its tick), also when one dispatcher is SIGKILLed just before
a tick; missed ticks after an outage of every dispatcher follow the
schedule's policy; GET /metrics counts the ticks once each, cluster-wide;
and the routes on `faas up`.

A tick's task id is uuid5(SCHEDULE_NS, f"{schedule_id}@{tick_ms}") (the
README says so): a test knows the task of every tick, and so whether a tick
made none or two."""
import datetime
import time
import uuid

import pytest
import requests

from conftest import FAAS, _deployment

SCHEDULE_NS = uuid.UUID("4f1b6c52-3f0a-4c39-9d0e-2a4c1f3e7b10")

TICK = """
import time
def tick(n=0):
    return time.time()
"""


def ts(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def ms(text):
    return round(ts(text) * 1000)


def task_id(sid, tick_ms):
    return str(uuid.uuid5(SCHEDULE_NS, "%s@%d" % (sid, tick_ms)))


def register(s, name="tick"):
    r = s.post("/register_function", {"name": name, "source": TICK, "entrypoint": "tick"})
    assert r.status_code == 200, r.text
    return r.json()["function_id"]


def create(s, fid, **body):
    r = s.post("/schedules", {"function_id": fid, **body})
    assert r.status_code == 200, r.text
    return r.json()


def get(s, sid):
    r = s.get(f"/schedules/{sid}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(s, sid, pred, timeout=40):
    deadline = time.time() + timeout
    while time.time() < deadline:
        sc = get(s, sid)
        if pred(sc):
            return sc
        time.sleep(0.1)
    raise AssertionError(f"schedule {sid} not there after {timeout}s: {get(s, sid)}")


def pause(s, sid):
    r = s.post(f"/schedules/{sid}/pause", {})
    assert r.status_code == 200, r.text
    assert r.json()["paused"] is True and r.json()["next_tick"] is None
    return r.json()


def tasks_of(s, fid):
    r = s.get("/tasks?limit=200")
    assert r.status_code == 200, r.text
    return [t for t in r.json()["tasks"] if t["function_id"] == fid]


def metrics(s):
    """The faas_schedule* samples of GET /metrics: {'name{label="v"}': value}."""
    r = s.get("/metrics")
    assert r.status_code == 200, r.text
    out = {}
    for line in r.text.splitlines():
        if line.startswith("faas_schedule"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def check_metrics(s, schedules, active, paused):
    """The cluster-wide schedule metrics of the deployment (whichever
    dispatcher fired each tick) are the sums of its schedules' counters."""
    m = metrics(s)
    assert m['faas_schedules{state="active"}'] == active and m['faas_schedules{state="paused"}'] == paused, m
    for outcome, field in (("fired", "tasks_created"), ("missed", "ticks_missed"), ("skipped", "ticks_skipped")):
        assert m[f'faas_schedule_ticks_total{{outcome="{outcome}"}}'] == sum(sc[field] for sc in schedules), (m, schedules)


def ticks_between(sc, every_ms=1000):
    """The ticks of an interval schedule from its first to its last_tick."""
    first = ms(sc["created_at"]) + every_ms
    last = ms(sc["last_tick"])
    assert (last - first) % every_ms == 0, sc
    return list(range(first, last + 1, every_ms))


def check_one_task_per_tick(s, fid, sc):
    """Every tick from the first to the last made exactly one task, with its
    tick's id, and each ran."""
    ticks = ticks_between(sc)
    assert sc["ticks_missed"] == 0 and sc["ticks_skipped"] == 0, sc
    assert sc["tasks_created"] == len(ticks), (sc, len(ticks))
    tasks = tasks_of(s, fid)
    ids = [t["task_id"] for t in tasks]
    assert len(ids) == len(set(ids)) == len(ticks), ids
    assert set(ids) == {task_id(sc["schedule_id"], t) for t in ticks}
    assert sc["last_task_id"] == task_id(sc["schedule_id"], ticks[-1])
    for tid in ids:
        body = s.wait_result(tid)
        assert body["status"] == "COMPLETED", body
    return tasks


@pytest.fixture(scope="module", params=["split", "sentinel"])
def three(request):
    """redis-server (or Redis Sentinel), faas api and three `faas dispatcher -m local`."""
    gen = _deployment(request, request.param, sandboxes=1)
    s = next(gen)
    for name in ("dispatcher2", "dispatcher3"):
        s.spawn(name, [FAAS, "dispatcher", "-m", "local", "-w", "1", "--redis", s.redis_url, "--lease", "2s",
                       "--timeout", s.timeout])
    deadline = time.time() + 60
    while True:
        nodes = [n for n in s.get("/runtime").json()["nodes"] if n["role"] == "dispatcher" and n["alive"]]
        if len(nodes) == 3:
            break
        for name in ("dispatcher", "dispatcher2", "dispatcher3"):
            assert s.procs[name].poll() is None, f"{name} exited"
        assert time.time() < deadline, f"3 dispatchers not up: {nodes}"
        time.sleep(0.2)
    yield s
    next(gen, None)  # the deployment's teardown


def test_ten_ticks_make_ten_tasks_with_three_dispatchers(three):
    s = three
    fid = register(s)
    sc = create(s, fid, every="1s", name="each second")
    assert sc["every"] == "1s" and sc["missed"] == "run_once" and sc["tasks_created"] == 0
    assert ms(sc["next_tick"]) == ms(sc["created_at"]) + 1000
    wait_for(s, sc["schedule_id"], lambda x: x["tasks_created"] >= 10)
    sc = pause(s, sc["schedule_id"])
    # The tenth tick, or one or two more if they came before the pause:
    # however many, one task each.
    assert 10 <= sc["tasks_created"] <= 12, sc
    check_one_task_per_tick(s, fid, sc)
    time.sleep(1.5)
    assert get(s, sc["schedule_id"])["tasks_created"] == sc["tasks_created"], "a paused schedule ticked"
    # Fired by three dispatchers, counted once per tick.
    check_metrics(s, [sc], active=0, paused=1)


def test_a_dispatcher_killed_across_a_tick(three):
    s = three
    fid = register(s, "tick_kill")
    sid = create(s, fid, every="1s")["schedule_id"]
    sc = wait_for(s, sid, lambda x: x["tasks_created"] >= 3)
    # SIGKILL one dispatcher 20 ms before a tick: the others fire it.
    nxt = ts(sc["next_tick"])
    if nxt - time.time() < 0.3:
        nxt += 1
    time.sleep(max(nxt - time.time() - 0.02, 0))
    s.kill("dispatcher")
    killed_at = time.time()
    sc = wait_for(s, sid, lambda x: x["tasks_created"] >= 8)
    sc = pause(s, sid)
    assert ts(sc["last_tick"]) > killed_at + 2, sc
    check_one_task_per_tick(s, fid, sc)


@pytest.fixture(scope="module", params=["split", "sentinel"])
def split(request):
    yield from _deployment(request, request.param, sandboxes=1)


def test_missed_ticks_after_an_outage_follow_the_policy(split):
    """Every dispatcher down for about 4 ticks: run_once makes one catch-up
    task for the missed ticks, skip none; both go on at the next tick."""
    s = split
    fid = register(s, "tick_outage")
    once = create(s, fid, every="1s", missed="run_once")["schedule_id"]
    skip = create(s, fid, every="1s", missed="skip")["schedule_id"]
    wait_for(s, once, lambda x: x["tasks_created"] >= 1)
    s.kill("dispatcher")
    down = time.time()
    time.sleep(4.5)
    s.start_dispatcher()
    back = time.time()
    for sid in (once, skip):
        wait_for(s, sid, lambda x: x["last_tick"] and ts(x["last_tick"]) > back + 1.5)
    by = {sid: pause(s, sid) for sid in (once, skip)}
    created = {t["task_id"] for t in tasks_of(s, fid)}
    for sid, sc in by.items():
        ticks = ticks_between(sc)
        assert sc["ticks_missed"] >= 3, sc
        made = {t for t in ticks if task_id(sid, t) in created}
        assert len(made) == sc["tasks_created"], (sc, made)
        missed = [t for t in ticks if t not in made]
        # The missed ticks are those of the outage, no others.
        assert all(down - 1 <= t / 1000 <= back + 1.5 for t in missed), (sc, missed, down, back)
        catch_up = 1 if sid == once else 0
        assert sc["tasks_created"] == len(ticks) - sc["ticks_missed"] + catch_up, (sc, len(ticks))
    check_metrics(s, [get(s, sid) for sid in (once, skip)], active=0, paused=2)


@pytest.fixture(scope="module")
def up(request):
    yield from _deployment(request, "up")


def test_schedule_routes_on_faas_up(up):
    s = up
    fid = register(s, "tick_up")
    sc = create(s, fid, every=1, args=[5], name="up")
    sid = sc["schedule_id"]
    assert sc["json_args"] is True and sc["last_tick"] is None and sc["last_task_id"] is None
    sc = wait_for(s, sid, lambda x: x["tasks_created"] >= 2)
    body = s.wait_result(sc["last_task_id"])
    assert body["status"] == "COMPLETED" and isinstance(body["result_json"], float), body
    paused = pause(s, sid)
    time.sleep(1.5)
    assert get(s, sid)["tasks_created"] == paused["tasks_created"]
    r = s.post(f"/schedules/{sid}/resume", {})
    assert r.status_code == 200 and r.json()["paused"] is False, r.text
    assert ts(r.json()["next_tick"]) > time.time() - 0.5
    wait_for(s, sid, lambda x: x["tasks_created"] > paused["tasks_created"])
    cron = create(s, fid, cron="0 9 * * MON-FRI", timezone="Europe/Paris", missed="skip")
    assert datetime.datetime.fromtimestamp(ts(cron["next_tick"]), datetime.timezone.utc).minute == 0
    listed = [x["schedule_id"] for x in s.get("/schedules").json()["schedules"]]
    assert listed[-2:] == [sid, cron["schedule_id"]], listed
    for bad, why in [({"cron": "61 * * * *"}, "cron"), ({"every": "10ms"}, "every"), ({"every": 5, "cron": "* * * * *"}, "not both")]:
        r = s.post("/schedules", {"function_id": fid, **bad})
        assert r.status_code == 422 and why in r.json()["detail"], r.text
    r = s.post("/schedules", {"function_id": str(uuid.uuid4()), "every": 5})
    assert r.status_code == 404, r.text
    for x in (sid, cron["schedule_id"]):
        r = requests.delete(s.url + f"/schedules/{x}", timeout=30)
        assert r.status_code == 200 and r.json()["deleted"] is True, r.text
    assert s.get(f"/schedules/{sid}").status_code == 404
