package api

import (
	"fmt"

	"github.com/wasmfaas/wasmfaas/schedule"
)

func scheduleIDParam() parameter {
	return parameter{Name: "schedule_id", In: "path", Required: true, Description: "a schedule id (a UUID, as POST /schedules returned it)",
		Schema: &schema{Type: "string", Format: "uuid"}}
}

// scheduleOps describes the schedule routes (schedules.go).
func (d *document) scheduleOps(opts Options) {
	d.Tags = append(d.Tags, tag{"schedules", "Run a function at every tick of a cron expression or an interval."})
	req := objSchema("A schedule: a function, its arguments (JSON, or pickled by dill as for POST /execute_function) and when it runs: "+
		"`cron` or `every`.").
		prop("function_id", &schema{Type: "string", Format: "uuid", Description: "a registered function's id (the caller's)"}, true).
		prop("name", strSchema("a name to tell it by"), false).
		prop("cron", strSchema("a 5-field cron expression: minute hour day-of-month month day-of-week, with *, ranges (1-5), "+
			"steps (*/15), lists (1,15) and names (JAN-DEC, SUN-SAT), or @hourly, @daily, @weekly, @monthly, @yearly; "+
			"when both day fields are restricted, either matches. Not with every"), false).
		prop("timezone", strSchema(`the cron expression's time zone, an IANA name such as "Europe/Paris" (default UTC). `+
			"At a daylight-saving gap a tick in the missing hour does not happen that day; in a repeated hour it happens in both"), false).
		prop("every", &schema{Type: []string{"string", "number"}, Description: fmt.Sprintf(
			`an interval: a duration such as "30s" or "1h", or seconds; from %s to %s. The ticks are created_at + k * every, k >= 1. Not with cron`,
			schedule.MinEvery, schedule.MaxEvery)}, false).
		prop("missed", &schema{Type: "string", Enum: []string{string(schedule.RunOnce), string(schedule.Skip)}, Description: fmt.Sprintf(
			"what happens to ticks no dispatcher fired in time (later than their period, at most %s, after them: an outage). "+
				"run_once (default): one catch-up task for them all, then on at the next tick; skip: none, on at the next tick. "+
				"A tick fired in time gets its task under either", schedule.MaxGrace)}, false).
		prop("args", arrayOf(nil, "positional arguments as JSON (default []); the results come back as JSON too"), false).
		prop("kwargs", &schema{Type: "object", Description: "keyword arguments as JSON (default {})"}, false).
		prop("payload", strSchema("serialize((args, kwargs)) instead of args/kwargs: base64 of dill.dumps of a (tuple, dict) pair"), false).
		prop("retries", &schema{AnyOf: []*schema{refSchema("RetryPolicy")}, Description: "the tasks' retry policy, instead of the function's (0 or null: none)"}, false)
	req.needsOneOf("cron", "every")
	req.Not = &schema{AnyOf: []*schema{{Required: []string{"cron", "every"}}, {Required: []string{"timezone", "every"}},
		{Required: []string{"payload", "args"}}, {Required: []string{"payload", "kwargs"}}}}
	d.component("ScheduleRequest", req)
	d.component("Schedule", schemaFor[scheduleResponse]("A schedule, with its next tick and what its ticks made."))
	d.component("SchedulesResponse", schemaFor[schedulesResponse]("The caller's schedules."))
	d.component("DeleteScheduleResponse", schemaFor[deleteScheduleResponse]("The schedule was deleted."))
	d.op("POST", "/schedules", &operation{
		OperationID: "createSchedule", Tags: []string{"schedules"},
		Summary: "Create a schedule",
		Description: "At every tick, a dispatcher creates a task of the function with the schedule's arguments, as POST /execute_function " +
			"would (it counts towards the tenant's queued-task limit: a tick the limit refuses makes no task and is counted in ticks_skipped " +
			"with the reason in last_skip; the schedule goes on). Each tick makes exactly one task however many dispatchers run, and " +
			"a dispatcher that dies leaves the ticks to the others. The first tick is the first after the schedule's creation.",
		RequestBody: &requestBody{Required: true, Content: jsonBody(refSchema("ScheduleRequest"))},
		Responses: responses("the new schedule", jsonBody(refSchema("Schedule")), map[int]string{
			400: "the function id is not a UUID, or the payload is not base64 or not a pickled (tuple, dict) pair",
			404: "no such function",
			413: fmt.Sprintf("the body is larger than %d bytes", opts.MaxBodyBytes),
			422: "the body is not a JSON object; a field is missing or has the wrong type; a bad cron expression, time zone, interval or " +
				"missed policy; both cron and every, or payload and args/kwargs; or delay/run_at, which schedules do not take",
			503: storeDown,
		}),
	})
	d.op("GET", "/schedules", &operation{
		OperationID: "listSchedules", Tags: []string{"schedules"},
		Summary:   "List the caller's schedules",
		Responses: responses("the schedules, oldest first", jsonBody(refSchema("SchedulesResponse")), map[int]string{503: storeDown}),
	})
	notFound := map[int]string{400: "the schedule id is not a UUID", 404: "no such schedule", 503: storeDown}
	d.op("GET", "/schedules/{schedule_id}", &operation{
		OperationID: "getSchedule", Tags: []string{"schedules"},
		Summary:    "Get a schedule",
		Parameters: []parameter{scheduleIDParam()},
		Responses:  responses("the schedule", jsonBody(refSchema("Schedule")), notFound),
	})
	d.op("POST", "/schedules/{schedule_id}/pause", &operation{
		OperationID: "pauseSchedule", Tags: []string{"schedules"},
		Summary:     "Pause a schedule",
		Description: "It makes no task until resumed; its next_tick is null meanwhile. Pausing a paused schedule changes nothing.",
		Parameters:  []parameter{scheduleIDParam()},
		Responses:   responses("the schedule", jsonBody(refSchema("Schedule")), notFound),
	})
	d.op("POST", "/schedules/{schedule_id}/resume", &operation{
		OperationID: "resumeSchedule", Tags: []string{"schedules"},
		Summary: "Resume a paused schedule",
		Description: "It goes on at its first tick after now: the ticks of the pause are neither run nor counted as missed. " +
			"Resuming a schedule that is not paused changes nothing.",
		Parameters: []parameter{scheduleIDParam()},
		Responses:  responses("the schedule", jsonBody(refSchema("Schedule")), notFound),
	})
	d.op("DELETE", "/schedules/{schedule_id}", &operation{
		OperationID: "deleteSchedule", Tags: []string{"schedules"},
		Summary:    "Delete a schedule",
		Parameters: []parameter{scheduleIDParam()},
		Responses:  responses("the schedule is gone; the tasks it made stay", jsonBody(refSchema("DeleteScheduleResponse")), notFound),
	})
}
