package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/wasmfaas/wasmfaas/schedule"
	"github.com/wasmfaas/wasmfaas/store"
)

// Schedules: POST /schedules, GET /schedules, GET /schedules/{id},
// POST /schedules/{id}/pause and /resume, DELETE /schedules/{id}. A
// schedule belongs to the request's tenant and runs one of its functions
// at every tick; the dispatchers fire the ticks (store.FireDue).

// skipJSON is why a tick made no task.
type skipJSON struct {
	Reason string    `json:"reason" doc:"why the tick's task was not made: the tenant's queue was full, or the function is gone"`
	Tick   time.Time `json:"tick" doc:"the tick"`
	At     time.Time `json:"at" doc:"when it was noticed"`
}

type scheduleResponse struct {
	ScheduleID string  `json:"schedule_id" doc:"the schedule's id (a UUID)"`
	Name       string  `json:"name" doc:"the name it was given (may be empty)"`
	FunctionID string  `json:"function_id" doc:"the function each tick runs"`
	Cron       *string `json:"cron,omitempty" doc:"the cron expression, for a cron schedule"`
	Timezone   *string `json:"timezone,omitempty" doc:"the time zone of the cron expression (absent: UTC)"`
	Every      *string `json:"every,omitempty" doc:"the interval, for an interval schedule, as a Go duration (\"30s\", \"1h0m0s\"); the ticks are created_at + k * every"`
	Missed     string  `json:"missed" enum:"run_once,skip" doc:"what ticks missed during an outage do: run_once, one catch-up task for them all; skip, none"`
	Paused     bool    `json:"paused"`
	JSONArgs   bool    `json:"json_args" doc:"true if the arguments are JSON (the tasks' results come back as JSON too)"`
	// Retries is the tasks' retry policy, absent for none.
	Retries   *json.RawMessage `json:"retries,omitempty" doc:"the tasks' retry policy (absent: none)"`
	CreatedAt time.Time        `json:"created_at"`
	NextTick  *time.Time       `json:"next_tick" doc:"when the next tick is due; null while paused"`
	LastTick  *time.Time       `json:"last_tick" doc:"the latest tick fired (or skipped); null before the first"`
	// LastTaskID is the task of the latest tick that made one.
	LastTaskID   *string   `json:"last_task_id" doc:"the task the latest tick made; null before the first"`
	TasksCreated int64     `json:"tasks_created" doc:"tasks the schedule made so far"`
	TicksMissed  int64     `json:"ticks_missed" doc:"ticks no dispatcher looked at in time (an outage), handled by the missed policy"`
	TicksSkipped int64     `json:"ticks_skipped" doc:"ticks whose task could not be made (see last_skip)"`
	LastSkip     *skipJSON `json:"last_skip" doc:"the latest skipped tick and why; null if none"`
}

type schedulesResponse struct {
	Schedules []scheduleResponse `json:"schedules" doc:"the caller's schedules, oldest first"`
}

type deleteScheduleResponse struct {
	ScheduleID string `json:"schedule_id"`
	Deleted    bool   `json:"deleted" doc:"always true: the schedule is gone (the tasks it made stay)"`
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func scheduleJSON(sc store.Schedule) scheduleResponse {
	r := scheduleResponse{
		ScheduleID: sc.ID, Name: sc.Name, FunctionID: sc.FunctionID, Cron: optString(sc.Cron), Timezone: optString(sc.Timezone),
		Missed: string(sc.Missed), Paused: sc.Paused, JSONArgs: sc.WantJSON, CreatedAt: sc.CreatedAt.UTC(),
		NextTick: optTime(sc.NextTick), LastTick: optTime(sc.LastTick), LastTaskID: optString(sc.LastTaskID),
		TasksCreated: sc.TasksCreated, TicksMissed: sc.TicksMissed, TicksSkipped: sc.TicksSkipped,
	}
	if sc.Cron == "" {
		r.Every = optString(sc.Every.String())
	}
	if sc.Retry != nil {
		if b, err := json.Marshal(sc.Retry); err == nil {
			raw := json.RawMessage(b)
			r.Retries = &raw
		}
	}
	if sc.LastSkip != "" {
		r.LastSkip = &skipJSON{Reason: sc.LastSkip, Tick: sc.LastSkipTick.UTC(), At: sc.LastSkipAt.UTC()}
	}
	return r
}

// createSchedule: {"function_id", "cron" (+ "timezone") or "every",
// "args"/"kwargs" or "payload", "retries"?, "name"?, "missed"?}.
func (h *Handler) createSchedule(w http.ResponseWriter, r *http.Request) error {
	m, err := readObject(w, r, h.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	fnText, _, err := stringField(m, "function_id", false)
	if err != nil {
		return err
	}
	name, _, err := stringField(m, "name", true)
	if err != nil {
		return err
	}
	for _, f := range []string{"delay", "run_at"} {
		if raw, ok := m[f]; ok && string(raw) != "null" {
			return errorf(http.StatusUnprocessableEntity, "field %q is not for schedules: their tasks start at their ticks", f)
		}
	}
	if _, ok := m["callback_url"]; ok {
		return errorf(http.StatusUnprocessableEntity, "field %q is not for schedules: their tasks use the function's "+
			"(register it with one)", "callback_url")
	}
	cronText, hasCron, err := stringField(m, "cron", true)
	if err != nil {
		return err
	}
	tz, hasTZ, err := stringField(m, "timezone", true)
	if err != nil {
		return err
	}
	rawEvery, hasEvery := m["every"]
	hasEvery = hasEvery && string(rawEvery) != "null"
	missedText, _, err := stringField(m, "missed", true)
	if err != nil {
		return err
	}
	missed, err := schedule.ParseMissed(missedText)
	if err != nil {
		return errorf(http.StatusUnprocessableEntity, "field %q: %v", "missed", err)
	}
	now := time.Now()
	sc := store.Schedule{ID: uuid.NewString(), Name: name, Owner: tenantOf(r), Missed: missed, CreatedAt: now}
	switch {
	case hasCron && hasEvery:
		return errorf(http.StatusUnprocessableEntity, `give either "cron" or "every", not both`)
	case hasCron:
		if _, err := schedule.ParseCron(cronText, tz); err != nil {
			return errorf(http.StatusUnprocessableEntity, "field %q: %v", "cron", err)
		}
		sc.Cron, sc.Timezone = strings.TrimSpace(cronText), tz
	case hasEvery:
		if hasTZ {
			return errorf(http.StatusUnprocessableEntity, `field "timezone" is for a "cron" schedule, not an interval`)
		}
		d, err := durationValue(rawEvery)
		if err == nil {
			_, err = schedule.Every(d, now)
		}
		if err != nil {
			return errorf(http.StatusUnprocessableEntity, `field "every" must be a duration such as "30s" or "1h", or a number of seconds, from %s to %s`,
				schedule.MinEvery, schedule.MaxEvery)
		}
		sc.Every = d.Round(time.Millisecond)
	default:
		return errorf(http.StatusUnprocessableEntity, `give "cron" (a 5-field cron expression such as "*/5 * * * *") or "every" (an interval such as "30s")`)
	}
	if sc.ParamPayload, sc.WantJSON, err = callArguments(m, true); err != nil {
		return err
	}
	fnID, err := parseID("function_id", fnText)
	if err != nil {
		return err
	}
	f, err := h.getFunction(r, fnID)
	if err != nil {
		return err
	}
	sc.FunctionID = f.ID
	if !sc.WantJSON {
		if err := checkArgsPayload(sc.ParamPayload, f.BundleModules); err != nil {
			return err
		}
	}
	sc.Retry = f.Retry
	if p, given, err := readRetry(m, "retries"); err != nil {
		return err
	} else if given {
		sc.Retry = p
	}
	if err := h.st.PutSchedule(r.Context(), sc); err != nil {
		return err
	}
	created, err := h.st.GetSchedule(r.Context(), sc.Owner, sc.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, scheduleJSON(created))
	return nil
}

// scheduleOf reads the schedule named by the path, of the request's
// tenant (another tenant's is a 404, exactly as an unknown one).
func (h *Handler) scheduleOf(r *http.Request) (store.Schedule, error) {
	id, err := parseID("schedule_id", chi.URLParam(r, "schedule_id"))
	if err != nil {
		return store.Schedule{}, err
	}
	sc, err := h.st.GetSchedule(r.Context(), tenantOf(r), id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Schedule{}, errorf(http.StatusNotFound, "schedule %s not found", id)
	}
	return sc, err
}

func (h *Handler) getSchedule(w http.ResponseWriter, r *http.Request) error {
	sc, err := h.scheduleOf(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, scheduleJSON(sc))
	return nil
}

func (h *Handler) listSchedules(w http.ResponseWriter, r *http.Request) error {
	list, err := h.st.ListSchedules(r.Context(), tenantOf(r))
	if err != nil {
		return err
	}
	resp := schedulesResponse{Schedules: make([]scheduleResponse, 0, len(list))}
	for _, sc := range list {
		resp.Schedules = append(resp.Schedules, scheduleJSON(sc))
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// setSchedule pauses, resumes or deletes the schedule of the path.
func (h *Handler) setSchedule(op string) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		sc, err := h.scheduleOf(r)
		if err != nil {
			return err
		}
		tenant := tenantOf(r)
		switch op {
		case "pause":
			err = h.st.PauseSchedule(r.Context(), tenant, sc.ID)
		case "resume":
			err = h.st.ResumeSchedule(r.Context(), tenant, sc.ID, time.Now())
		case "delete":
			err = h.st.DeleteSchedule(r.Context(), tenant, sc.ID)
		}
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusNotFound, "schedule %s not found", sc.ID)
		}
		if err != nil {
			return err
		}
		if op == "delete" {
			writeJSON(w, http.StatusOK, deleteScheduleResponse{ScheduleID: sc.ID, Deleted: true})
			return nil
		}
		return h.getSchedule(w, r)
	}
}
