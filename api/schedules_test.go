package api

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

func TestScheduleRoutes(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		src := e.do("POST", "/register_function", map[string]any{"name": "double", "source": "def double(x):\n    return 2 * x"}).str("function_id")
		before := time.Now()
		r := e.do("POST", "/schedules", map[string]any{"function_id": src, "every": "2s", "args": []int{21}, "name": "twice"})
		if r.status != 200 {
			t.Fatalf("create: %d %s", r.status, r.raw)
		}
		id := r.str("schedule_id")
		next, err := time.Parse(time.RFC3339Nano, r.str("next_tick"))
		if err != nil || next.Before(before.Add(2*time.Second-time.Millisecond)) || next.After(time.Now().Add(2*time.Second)) {
			t.Fatalf("next_tick %q: %v", r.str("next_tick"), err)
		}
		if r.str("every") != "2s" || r.str("missed") != "run_once" || r.body["paused"] != false || r.body["json_args"] != true ||
			r.body["last_tick"] != nil || r.body["tasks_created"] != 0.0 || r.str("name") != "twice" {
			t.Fatalf("create: %s", r.raw)
		}
		// A dispatcher fires the first tick: the task is the caller's, in GET /tasks.
		res, err := e.st.FireDue(t.Context(), next)
		if err != nil || res.Created != 1 {
			t.Fatalf("FireDue: %+v %v", res, err)
		}
		r = e.do("GET", "/schedules/"+id, nil)
		task := r.str("last_task_id")
		if r.body["tasks_created"] != 1.0 || task != store.ScheduleTaskID(id, next) || r.str("last_tick") == "" {
			t.Fatalf("after a tick: %s", r.raw)
		}
		if _, list := e.listTaskIDs(""); len(list) != 1 || list[0].TaskID != task {
			t.Fatalf("GET /tasks: %+v", list)
		}
		if st := e.do("GET", "/status/"+task, nil); st.str("status") != "QUEUED" {
			t.Fatalf("status: %s", st.raw)
		}
		// Pause, resume, list, delete.
		if r = e.do("POST", "/schedules/"+id+"/pause", nil); r.body["paused"] != true || r.body["next_tick"] != nil {
			t.Fatalf("pause: %s", r.raw)
		}
		if r = e.do("POST", "/schedules/"+id+"/resume", nil); r.body["paused"] != false || r.str("next_tick") == "" {
			t.Fatalf("resume: %s", r.raw)
		}
		cron := e.do("POST", "/schedules", map[string]any{"function_id": src, "cron": "0 9 * * MON-FRI", "timezone": "Europe/Paris",
			"kwargs": map[string]int{"x": 2}, "missed": "skip", "retries": map[string]any{"max": 2}})
		if cron.status != 200 || cron.str("cron") != "0 9 * * MON-FRI" || cron.str("timezone") != "Europe/Paris" || cron.body["every"] != nil ||
			cron.str("missed") != "skip" || cron.body["retries"] == nil {
			t.Fatalf("cron: %s", cron.raw)
		}
		list := e.do("GET", "/schedules", nil)
		items, _ := list.body["schedules"].([]any)
		if len(items) != 2 || items[0].(map[string]any)["schedule_id"] != id {
			t.Fatalf("list: %s", list.raw)
		}
		if r = e.do("DELETE", "/schedules/"+id, nil); r.body["deleted"] != true {
			t.Fatalf("delete: %s", r.raw)
		}
		expectError(t, e.do("GET", "/schedules/"+id, nil), 404, "not found")
		expectError(t, e.do("DELETE", "/schedules/"+id, nil), 404, "not found")
	})
}

func TestScheduleErrors(t *testing.T) {
	e := newEnv(t, redistest.StartMini(t), Options{})
	fn := e.register(pyfixture.Fixture(t, "fib"))
	args := pyfixture.Fixture(t, "args_simple")
	for _, tc := range []struct {
		body   map[string]any
		status int
		want   string
	}{
		{map[string]any{"every": "1s"}, 422, `"function_id" is required`},
		{map[string]any{"function_id": fn}, 422, `give "cron"`},
		{map[string]any{"function_id": fn, "cron": "* * * * *", "every": "1s"}, 422, "not both"},
		{map[string]any{"function_id": fn, "cron": "* * *"}, 422, "5 fields"},
		{map[string]any{"function_id": fn, "cron": "61 * * * *"}, 422, "cron"},
		{map[string]any{"function_id": fn, "cron": "* * * * *", "timezone": "Nowhere/Land"}, 422, "unknown time zone"},
		{map[string]any{"function_id": fn, "cron": "@every 1s"}, 422, `"every"`},
		{map[string]any{"function_id": fn, "every": "500ms"}, 422, `"every" must be`},
		{map[string]any{"function_id": fn, "every": "soon"}, 422, `"every" must be`},
		{map[string]any{"function_id": fn, "every": 5, "timezone": "UTC"}, 422, "timezone"},
		{map[string]any{"function_id": fn, "every": 5, "missed": "all"}, 422, "missed"},
		{map[string]any{"function_id": fn, "every": 5, "delay": "1s"}, 422, "not for schedules"},
		{map[string]any{"function_id": fn, "every": 5, "callback_url": "https://example.com/"}, 422, `field "callback_url" is not for schedules`},
		{map[string]any{"function_id": fn, "every": 5, "payload": args, "args": []int{1}}, 422, "not both"},
		{map[string]any{"function_id": fn, "every": 5, "args": 1}, 422, "JSON array"},
		{map[string]any{"function_id": fn, "every": 5, "retries": map[string]any{"max": -1}}, 422, "retries"},
		{map[string]any{"function_id": fn, "every": 5, "payload": "@@@"}, 400, "base64"},
		{map[string]any{"function_id": "nope", "every": 5}, 400, "not a UUID"},
		{map[string]any{"function_id": uuid.NewString(), "every": 5}, 404, "not found"},
	} {
		expectError(t, e.do("POST", "/schedules", tc.body), tc.status, tc.want)
	}
	expectError(t, e.do("GET", "/schedules/nope", nil), 400, "not a UUID")
	expectError(t, e.do("POST", "/schedules/"+uuid.NewString()+"/pause", nil), 404, "not found")
	if r := e.do("POST", "/schedules", map[string]any{"function_id": fn, "every": 5, "payload": args}); r.status != 200 || r.body["json_args"] != false {
		t.Fatalf("a dill schedule: %d %s", r.status, r.raw)
	}
}

// Schedules are the tenant's: another tenant's is a 404, its function too,
// and a tick over the tenant's queue cap is skipped with the reason.
func TestSchedulesArePerTenant(t *testing.T) {
	e := newEnvWith(t, redistest.StartMini(t), store.Options{MaxQueued: 1}, Options{Auth: testAuth(t)})
	alice, bob := e.as(aliceToken), e.as(bobToken)
	src := alice.do("POST", "/register_function", map[string]any{"name": "f", "source": "def f():\n    return 1"}).str("function_id")
	expectError(t, bob.do("POST", "/schedules", map[string]any{"function_id": src, "every": 5}), 404, "function")
	r := alice.do("POST", "/schedules", map[string]any{"function_id": src, "every": 1})
	id := r.str("schedule_id")
	for _, req := range [][2]string{{"GET", "/schedules/" + id}, {"POST", "/schedules/" + id + "/pause"},
		{"POST", "/schedules/" + id + "/resume"}, {"DELETE", "/schedules/" + id}} {
		expectError(t, bob.do(req[0], req[1], nil), http.StatusNotFound, "not found")
	}
	if items, _ := bob.do("GET", "/schedules", nil).body["schedules"].([]any); len(items) != 0 {
		t.Fatalf("bob lists %v", items)
	}
	if r := alice.do("POST", "/execute_function", map[string]any{"function_id": src, "args": []int{}}); r.status != 200 {
		t.Fatal(r.raw)
	}
	next, _ := time.Parse(time.RFC3339Nano, r.str("next_tick"))
	if res, err := e.st.FireDue(t.Context(), next); err != nil || res.Skipped != 1 {
		t.Fatalf("FireDue: %+v %v", res, err)
	}
	got := alice.do("GET", "/schedules/"+id, nil)
	skip, _ := got.body["last_skip"].(map[string]any)
	if got.body["ticks_skipped"] != 1.0 || skip == nil || skip["reason"] == nil || got.str("next_tick") == "" {
		t.Fatalf("after a refused tick: %s", got.raw)
	}
}
