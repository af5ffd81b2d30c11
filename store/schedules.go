package store

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/schedule"
)

// Schedules. A schedule runs a function with fixed arguments at every tick
// of a cron expression or an interval (package schedule). It is a hash
// (keys.schedule) and, unless paused, a member of the active set scored by
// its next tick; a tenant's index lists its schedules. Every dispatcher
// calls FireDue when the earliest tick is due: for each due schedule it
// plans the tick in Go (schedule.Spec.Plan: the next tick, the missed-tick
// policy) and runs fire_schedule.lua, a compare-and-set on the schedule's
// score that creates the tick's tasks and moves the score in one script.
// Of any number of dispatchers racing for a tick, exactly one finds the
// score it read; a dispatcher that dies before its script ran leaves the
// tick due for the others, and one that dies after has fired it. Task ids
// are derived from the schedule id and the tick (ScheduleTaskID), so no
// tick can make two tasks.

var (
	//go:embed lua/fire_schedule.lua
	fireScheduleLua    string
	scriptFireSchedule = newScript("fire_schedule", withLib(part("fire_schedule.lua", fireScheduleLua))...)

	//go:embed lua/put_schedule.lua
	putScheduleLua    string
	scriptPutSchedule = newScript("put_schedule", part("put_schedule.lua", putScheduleLua))

	//go:embed lua/schedule_state.lua
	scheduleStateLua    string
	scriptScheduleState = newScript("schedule_state", part("schedule_state.lua", scheduleStateLua))
)

// Schedule is a schedule as stored.
type Schedule struct {
	ID    string
	Name  string
	Owner string // the tenant ("" the default one)
	// FunctionID is the function each tick runs, with ParamPayload (base64
	// serialize((args, kwargs)), or the JSON-arguments payload when
	// WantJSON) and Retry (nil: none) as its tasks' arguments and retry
	// policy.
	FunctionID   string
	ParamPayload string
	WantJSON     bool
	Retry        *faastype.RetryPolicy
	// Cron and Timezone, or Every: when it ticks (Spec). An interval ticks
	// at CreatedAt + k*Every, k >= 1.
	Cron     string
	Timezone string
	Every    time.Duration
	Missed   schedule.Missed
	Paused   bool
	// CreatedAt is set by PutSchedule (now) when zero, in milliseconds.
	CreatedAt time.Time

	// Set by the store.
	NextTick     time.Time // zero when paused (or no tick is left)
	LastTick     time.Time // the latest tick looked at (fired, or skipped)
	LastFiredAt  time.Time // when that look happened
	LastTaskID   string
	TasksCreated int64
	TicksMissed  int64 // ticks no dispatcher looked at in time (schedule.Spec.Plan)
	TicksSkipped int64 // ticks whose task could not be made (queue full, function gone)
	// LastSkip is the reason of the latest skipped tick ("" none), at
	// LastSkipTick, noticed at LastSkipAt.
	LastSkip     string
	LastSkipTick time.Time
	LastSkipAt   time.Time
}

// Spec parses the schedule's cron expression or interval.
func (sc Schedule) Spec() (*schedule.Spec, error) {
	if sc.Cron != "" {
		return schedule.ParseCron(sc.Cron, sc.Timezone)
	}
	return schedule.Every(sc.Every, sc.CreatedAt)
}

// scheduleNS is the namespace of the task ids of schedules' ticks.
var scheduleNS = uuid.MustParse("4f1b6c52-3f0a-4c39-9d0e-2a4c1f3e7b10")

// ScheduleTaskID is the id of the task schedule id makes for tick (a UUID
// version 5 of the schedule id and the tick's unix milliseconds): the same
// tick always names the same task.
func ScheduleTaskID(id string, tick time.Time) string {
	return uuid.NewSHA1(scheduleNS, []byte(id+"@"+strconv.FormatInt(tick.UnixMilli(), 10))).String()
}

// PutSchedule creates a schedule (its id must be new: ErrExists), active
// from its first tick after CreatedAt unless Paused, and wakes the
// dispatchers waiting for a tick.
func (s *Store) PutSchedule(ctx context.Context, sc Schedule) error {
	if sc.ID == "" || sc.FunctionID == "" {
		return fmt.Errorf("store: put schedule: empty id or function id")
	}
	if err := checkOwner(sc.Owner); err != nil {
		return fmt.Errorf("store: put schedule %s: %w", sc.ID, err)
	}
	if sc.CreatedAt.IsZero() {
		sc.CreatedAt = time.Now()
	}
	sc.CreatedAt = time.UnixMilli(sc.CreatedAt.UnixMilli())
	if sc.Missed == "" {
		sc.Missed = schedule.RunOnce
	}
	spec, err := sc.Spec()
	if err != nil {
		return fmt.Errorf("store: put schedule %s: %w", sc.ID, err)
	}
	next := int64(-1)
	if n := spec.Next(sc.CreatedAt); !sc.Paused && !n.IsZero() {
		next = n.UnixMilli()
	}
	fields := []any{
		"id", sc.ID, "name", sc.Name, "owner", sc.Owner, "function_id", sc.FunctionID,
		"param_payload", sc.ParamPayload, "cron", sc.Cron, "timezone", sc.Timezone,
		"every_ms", sc.Every.Milliseconds(), "missed", string(sc.Missed), "created_at", sc.CreatedAt.UnixMilli(),
		"paused", boolField(sc.Paused), "want_json", boolField(sc.WantJSON),
		"tasks_created", 0, "ticks_missed", 0, "ticks_skipped", 0,
	}
	if sc.Retry != nil && sc.Retry.Max > 0 {
		b, err := json.Marshal(sc.Retry)
		if err != nil {
			return fmt.Errorf("store: put schedule %s: encode retry policy: %w", sc.ID, err)
		}
		fields = append(fields, "retry", string(b))
	}
	args := append([]any{sc.ID, sc.CreatedAt.UnixMilli(), next, s.keys.schedulesChannel(), boolField(sc.Paused)}, fields...)
	n, err := scriptPutSchedule.Run(ctx, s.rdb, []string{s.keys.schedule(sc.ID), s.keys.activeSchedules(), s.keys.schedulesOf(sc.Owner),
		s.keys.pausedSchedules()}, args...).Int()
	if err != nil {
		return fmt.Errorf("store: put schedule %s: %w", sc.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("store: put schedule %s: %w", sc.ID, ErrExists)
	}
	return nil
}

func boolField(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// GetSchedule loads a schedule of tenant; another tenant's is ErrNotFound,
// exactly as an unknown id.
func (s *Store) GetSchedule(ctx context.Context, tenant, id string) (Schedule, error) {
	m, err := s.rdb.HGetAll(ctx, s.keys.schedule(id)).Result()
	if err != nil {
		return Schedule{}, fmt.Errorf("store: get schedule %s: %w", id, err)
	}
	if m["function_id"] == "" || m["owner"] != tenant {
		return Schedule{}, fmt.Errorf("store: get schedule %s: %w", id, ErrNotFound)
	}
	return scheduleFromFields(id, m)
}

// ListSchedules returns tenant's schedules, oldest first.
func (s *Store) ListSchedules(ctx context.Context, tenant string) ([]Schedule, error) {
	ids, err := s.rdb.ZRange(ctx, s.keys.schedulesOf(tenant), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("store: list schedules: %w", err)
	}
	if len(ids) == 0 {
		return []Schedule{}, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, s.keys.schedule(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("store: list schedules: %w", err)
	}
	out := make([]Schedule, 0, len(ids))
	for i, id := range ids {
		m := cmds[i].Val()
		if m["function_id"] == "" || m["owner"] != tenant {
			continue // deleted meanwhile
		}
		sc, err := scheduleFromFields(id, m)
		if err != nil {
			return nil, fmt.Errorf("store: list schedules: %w", err)
		}
		out = append(out, sc)
	}
	return out, nil
}

func scheduleFromFields(id string, m map[string]string) (Schedule, error) {
	everyMS, _ := strconv.ParseInt(m["every_ms"], 10, 64)
	sc := Schedule{
		ID: id, Name: m["name"], Owner: m["owner"], FunctionID: m["function_id"], ParamPayload: m["param_payload"],
		WantJSON: m["want_json"] == "1", Cron: m["cron"], Timezone: m["timezone"], Every: time.Duration(everyMS) * time.Millisecond,
		Missed: schedule.Missed(m["missed"]), Paused: m["paused"] == "1", CreatedAt: parseMS(m["created_at"]),
		NextTick: parseMS(m["next_tick"]), LastTick: parseMS(m["last_tick"]), LastFiredAt: parseMS(m["last_fired_at"]),
		LastTaskID: m["last_task_id"], LastSkip: m["last_skip"], LastSkipTick: parseMS(m["last_skip_tick"]),
		LastSkipAt: parseMS(m["last_skip_at"]),
	}
	sc.TasksCreated, _ = strconv.ParseInt(m["tasks_created"], 10, 64)
	sc.TicksMissed, _ = strconv.ParseInt(m["ticks_missed"], 10, 64)
	sc.TicksSkipped, _ = strconv.ParseInt(m["ticks_skipped"], 10, 64)
	var err error
	if sc.Retry, err = decodeRetry(m["retry"]); err != nil {
		return Schedule{}, fmt.Errorf("schedule %s: %w", id, err)
	}
	return sc, nil
}

// PauseSchedule stops tenant's schedule from ticking until it is resumed;
// ErrNotFound for an unknown schedule or another tenant's.
func (s *Store) PauseSchedule(ctx context.Context, tenant, id string) error {
	return s.scheduleState(ctx, tenant, id, "pause", -1)
}

// ResumeSchedule makes a paused schedule tick again, from its first tick
// after now (the ticks of the pause are not run, nor counted as missed). A
// schedule that is not paused is left alone.
func (s *Store) ResumeSchedule(ctx context.Context, tenant, id string, now time.Time) error {
	sc, err := s.GetSchedule(ctx, tenant, id)
	if err != nil {
		return err
	}
	spec, err := sc.Spec()
	if err != nil {
		return fmt.Errorf("store: resume schedule %s: %w", id, err)
	}
	next := int64(-1)
	if n := spec.Next(now); !n.IsZero() {
		next = n.UnixMilli()
	}
	return s.scheduleState(ctx, tenant, id, "resume", next)
}

// DeleteSchedule removes tenant's schedule (the tasks it made stay).
func (s *Store) DeleteSchedule(ctx context.Context, tenant, id string) error {
	return s.scheduleState(ctx, tenant, id, "delete", -1)
}

func (s *Store) scheduleState(ctx context.Context, tenant, id, op string, next int64) error {
	n, err := scriptScheduleState.Run(ctx, s.rdb, []string{s.keys.schedule(id), s.keys.activeSchedules(), s.keys.schedulesOf(tenant),
		s.keys.pausedSchedules()}, id, tenant, op, next, s.keys.schedulesChannel()).Int()
	if err != nil {
		return fmt.Errorf("store: %s schedule %s: %w", op, id, err)
	}
	if n == 0 {
		return fmt.Errorf("store: %s schedule %s: %w", op, id, ErrNotFound)
	}
	return nil
}

// fireBatch bounds the due schedules one FireDue round reads.
const fireBatch = 100

// specCache keeps parsed specs by schedule id and spec text (a cron
// expression is parsed once, not at every tick), emptied when it holds
// specCacheMax.
var specCache = struct {
	sync.Mutex
	m map[string]*schedule.Spec
}{m: map[string]*schedule.Spec{}}

const specCacheMax = 4096

func (s *Store) specOf(id string, vals []any) (*schedule.Spec, schedule.Missed, error) {
	cronText, tz, everyText, created, missed := str(vals[0]), str(vals[1]), str(vals[2]), str(vals[3]), str(vals[4])
	key := id + "\x00" + cronText + "\x00" + tz + "\x00" + everyText + "\x00" + created
	specCache.Lock()
	spec, ok := specCache.m[key]
	specCache.Unlock()
	if ok {
		return spec, schedule.Missed(missed), nil
	}
	everyMS, _ := strconv.ParseInt(everyText, 10, 64)
	sc := Schedule{Cron: cronText, Timezone: tz, Every: time.Duration(everyMS) * time.Millisecond, CreatedAt: parseMS(created)}
	spec, err := sc.Spec()
	if err != nil {
		return nil, "", err
	}
	specCache.Lock()
	if len(specCache.m) >= specCacheMax {
		clear(specCache.m)
	}
	specCache.m[key] = spec
	specCache.Unlock()
	return spec, schedule.Missed(missed), nil
}

// FireResult is what FireDue did.
type FireResult struct {
	Created int // tasks created
	Skipped int // ticks whose task was refused (queue full, function gone)
	Missed  int // ticks missed (no dispatcher looked in time)
	// Next is the earliest next tick of the active schedules (zero: none).
	Next time.Time
}

// FireDue fires the schedules due at now: for each, the tasks of its due
// ticks as its missed-tick policy has them (schedule.Spec.Plan), and its
// next tick. Any number of dispatchers may call it at once: each tick is
// fired by exactly one of them.
func (s *Store) FireDue(ctx context.Context, now time.Time) (FireResult, error) {
	var res FireResult
	nowMS := now.UnixMilli()
	for round := 0; ; round++ {
		due, err := s.rdb.ZRangeByScoreWithScores(ctx, s.keys.activeSchedules(), &redis.ZRangeBy{
			Min: "-inf", Max: strconv.FormatInt(nowMS, 10), Count: fireBatch}).Result()
		if err != nil {
			return res, fmt.Errorf("store: fire due schedules: %w", err)
		}
		for _, z := range due {
			id, _ := z.Member.(string)
			if err := s.fire(ctx, id, int64(z.Score), now, &res); err != nil {
				return res, err
			}
		}
		// A full batch: more may be due (those fired moved past now). The
		// rounds are bounded in case another caller keeps a schedule due.
		if len(due) < fireBatch || round == 100 {
			break
		}
	}
	first, err := s.rdb.ZRangeWithScores(ctx, s.keys.activeSchedules(), 0, 0).Result()
	if err != nil {
		return res, fmt.Errorf("store: fire due schedules: %w", err)
	}
	if len(first) == 1 {
		res.Next = time.UnixMilli(int64(first[0].Score))
	}
	return res, nil
}

func (s *Store) fire(ctx context.Context, id string, tickMS int64, now time.Time, res *FireResult) error {
	// The script refuses (-2) when the owner or function it finds is not
	// the one read here, whose keys it was given: read again then.
	for range 3 {
		out, err := s.fireOnce(ctx, id, tickMS, now, res)
		if err != nil || out != -2 {
			return err
		}
	}
	return fmt.Errorf("store: fire schedule %s: its owner or function kept changing", id)
}

// fireOnce reads schedule id and runs its fire script once; it returns the
// script's first reply (-2: read again).
func (s *Store) fireOnce(ctx context.Context, id string, tickMS int64, now time.Time, res *FireResult) (int64, error) {
	key := s.keys.schedule(id)
	vals, err := s.rdb.HMGet(ctx, key, "cron", "timezone", "every_ms", "created_at", "missed", "owner", "function_id").Result()
	if err != nil {
		return 0, fmt.Errorf("store: fire schedule %s: %w", id, err)
	}
	owner, fnID := str(vals[5]), str(vals[6])
	keys := s.keys.tenancy(s.keys.stats(), s.keys.activeSchedules(), key, s.keys.recentOf(owner), s.keys.scheduledCounts(),
		s.keys.tenantQueue(owner), s.keys.function(fnID))
	args := []any{id, tickMS, -1, now.UnixMilli(), 0, s.maxQueued, RecentTasks, s.keys.newTasksChannel(), owner, fnID}
	if vals[3] == nil {
		// Deleted meanwhile: the script drops a member left behind.
		return 0, scriptFireSchedule.Run(ctx, s.rdb, keys, args...).Err()
	}
	spec, policy, err := s.specOf(id, vals)
	if err != nil {
		// Not written by this store: leave it, and say so.
		s.log.Warn("store: schedule with an unreadable spec; not fired", "schedule", id, "err", err)
		return 0, nil
	}
	plan := spec.Plan(time.UnixMilli(tickMS), now, policy)
	if !plan.Next.IsZero() {
		args[2] = plan.Next.UnixMilli()
	}
	args[4] = plan.Missed
	for _, t := range plan.Fire {
		keys = append(keys, s.keys.task(ScheduleTaskID(id, t)))
		args = append(args, t.UnixMilli())
	}
	out, err := scriptFireSchedule.Run(ctx, s.rdb, keys, args...).Int64Slice()
	if err != nil {
		return 0, fmt.Errorf("store: fire schedule %s: %w", id, err)
	}
	if len(out) != 2 {
		return 0, fmt.Errorf("store: fire schedule %s: unexpected script reply of %d items", id, len(out))
	}
	if out[0] < 0 {
		return out[0], nil // another dispatcher fired it, or it was paused or deleted (-1), or changed (-2)
	}
	res.Created += int(out[0])
	res.Skipped += int(out[1])
	res.Missed += plan.Missed
	return out[0], nil
}

// SubscribeSchedules delivers the next ticks (unix ms, as text) of the
// schedules created or resumed, like SubscribeTasks: a dispatcher waiting
// for the next tick looks again (FireDue) when one comes earlier.
func (s *Store) SubscribeSchedules(ctx context.Context) (ticks <-chan string, stop func()) {
	return s.subscribe(ctx, s.keys.schedulesChannel())
}
