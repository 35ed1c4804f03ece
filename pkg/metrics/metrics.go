// Package metrics holds chaoscron's Prometheus metrics in a private registry.
//
// The names chaos_injections_total{failure_type,status} and chaos_injection_active{failure_type}
// come from the original agent and are kept exactly, so existing dashboards keep working.
// No label carries a run id or a pid: label values are bounded by the config.
package metrics

import (
	"net/http"
	"runtime"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Injection outcomes, the values of the status label of chaos_injections_total.
const (
	Success = "success"
	Failed  = "failed"
	Skipped = "skipped"
)

// Set is the agent's metric set. The zero value is not usable; call New.
type Set struct {
	Registry *prometheus.Registry

	Injections   *prometheus.CounterVec   // failure_type, status
	Active       *prometheus.GaugeVec     // failure_type
	PlannedEnd   *prometheus.GaugeVec     // failure_type: earliest planned end of the faults in place
	Duration     *prometheus.HistogramVec // failure_type: injected → reverted
	Skips        *prometheus.CounterVec   // experiment, reason
	Runs         *prometheus.CounterVec   // experiment, status (journal status)
	Reverts      *prometheus.CounterVec   // failure_type, result
	Recoveries   *prometheus.CounterVec   // failure_type, result
	Sweeps       *prometheus.CounterVec   // failure_type
	NextFire     *prometheus.GaugeVec     // experiment
	Paused       *prometheus.GaugeVec     // experiment
	Trips        *prometheus.CounterVec   // experiment: runs aborted by their stop condition
	HTTPRequests *prometheus.CounterVec   // experiment, outcome: requests the http fault's proxy saw
	Halted       prometheus.Gauge
	OpenRuns     prometheus.Gauge
	JournalBytes prometheus.Gauge
	JournalErrs  prometheus.Counter
	ConfigReload *prometheus.CounterVec // result
	BuildInfo    *prometheus.GaugeVec

	// Fleet mode (pkg/fleet): registered by Fleet, so that an agent outside fleet mode does
	// not export a contact of 0 that an alert would take for a lost one.
	FleetContact   prometheus.Gauge       // 1 while the fleet's state is confirmed
	FleetHalted    prometheus.Gauge       // 1 while the group is halted
	FleetMembers   prometheus.Gauge       // live members of the group
	FleetSlots     *prometheus.GaugeVec   // state: used, max
	FleetRequests  *prometheus.CounterVec // op, result: this agent's calls to the API server
	FleetTakeDelay prometheus.Histogram   // how long a slot took to take (or refuse)
	fleetOnce      sync.Once
}

// New creates a metric set in a fresh private registry, with the Go and process collectors.
func New(version string) *Set {
	r := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { r.MustRegister(c) }
	s := &Set{
		Registry: r,
		Injections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chaos_injections_total",
			Help: "Fault injections by fault type and outcome (success, failed, skipped).",
		}, []string{"failure_type", "status"}),
		Active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chaos_injection_active",
			Help: "Faults currently in place, by fault type.",
		}, []string{"failure_type"}),
		PlannedEnd: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chaos_injection_planned_end_timestamp_seconds",
			Help: "Unix time at which the earliest-ending fault in place of each type is planned to end; 0 when none is in place.",
		}, []string{"failure_type"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chaos_injection_duration_seconds",
			Help:    "How long faults stayed in place, from applied to reverted.",
			Buckets: []float64{0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 900, 3600},
		}, []string{"failure_type"}),
		Skips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chaos_skips_total",
			Help: "Fires that did not inject, by experiment and reason (probability, window, blackout, halted, paused, concurrency, max_active, unhealthy, dry_run, no_target).",
		}, []string{"experiment", "reason"}),
		Runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chaos_runs_total",
			Help: "Finished runs by experiment and final journal status.",
		}, []string{"experiment", "status"}),
		Reverts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chaos_reverts_total",
			Help: "Fault reverts by the agent that applied them, by fault type and result (ok, failed).",
		}, []string{"failure_type", "result"}),
		Recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chaos_recoveries_total",
			Help: "Faults left behind by an earlier agent and reverted at start-up, by fault type and result (ok, failed).",
		}, []string{"failure_type", "result"}),
		Sweeps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chaos_sweeps_total",
			Help: "Leftovers found and removed by the start-up sweep with no journal record, by fault type.",
		}, []string{"failure_type"}),
		NextFire: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chaos_experiment_next_fire_timestamp_seconds",
			Help: "Unix time of each experiment's next scheduled fire.",
		}, []string{"experiment"}),
		Paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chaos_experiment_paused",
			Help: "1 while an experiment is paused (by hand, or by itself after abort_if.max_trips stop-condition aborts in a row): its scheduled fires are skipped.",
		}, []string{"experiment"}),
		Trips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chaos_stop_condition_trips_total",
			Help: "Runs ended early because their stop condition (abort_if) failed, by experiment.",
		}, []string{"experiment"}),
		FleetContact: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chaos_fleet_contact",
			Help: "1 while the fleet's state is confirmed through the Kubernetes API; 0 when it has not been for fleet.stale_after (faults reverted, nothing fires). Only in fleet mode.",
		}),
		FleetHalted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chaos_fleet_halted",
			Help: "1 while the agent's fleet group is halted (chaoscron fleet halt).",
		}),
		FleetMembers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chaos_fleet_members",
			Help: "Live members of the agent's fleet group, as this agent sees them.",
		}),
		FleetSlots: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chaos_fleet_slots",
			Help: "Fleet slots: used (faults in place across the group) and max (fleet.max_active resolved against the live members).",
		}, []string{"state"}),
		FleetRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chaos_fleet_requests_total",
			Help: "This agent's requests to the Kubernetes API by operation (renew, take, release, watch, pdb) and result (ok, conflict, error).",
		}, []string{"op", "result"}),
		FleetTakeDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chaos_fleet_take_seconds",
			Help:    "How long taking a fleet slot took, whether it was granted or refused.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
		}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chaos_http_requests_total",
			Help: "Requests the http fault's proxy saw, by experiment and outcome: seen (every request), aborted, delayed (a request both aborted and delayed counts in both).",
		}, []string{"experiment", "outcome"}),
		Halted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chaos_agent_halted",
			Help: "1 while the persisted halt switch is on: nothing fires.",
		}),
		OpenRuns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chaos_journal_open_runs",
			Help: "Journal runs whose cleanup is pending or failed.",
		}),
		JournalBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chaos_journal_size_bytes",
			Help: "Size of the journal file.",
		}),
		JournalErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chaos_journal_write_errors_total",
			Help: "Journal writes that failed (a failed intent write means the fault was not injected).",
		}),
		ConfigReload: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chaos_config_reloads_total",
			Help: "Config reloads by result (ok, rejected).",
		}, []string{"result"}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chaos_build_info",
			Help: "Always 1; labels carry the agent's version and Go version.",
		}, []string{"version", "goversion"}),
	}
	for _, c := range []prometheus.Collector{
		s.Injections, s.Active, s.PlannedEnd, s.Duration, s.Skips, s.Runs, s.Reverts, s.Recoveries, s.Sweeps,
		s.NextFire, s.Paused, s.Trips, s.HTTPRequests, s.Halted, s.OpenRuns, s.JournalBytes, s.JournalErrs, s.ConfigReload, s.BuildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		f(c)
	}
	s.BuildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	return s
}

// Handler serves the registry in the Prometheus exposition format.
func (s *Set) Handler() http.Handler {
	return promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{Registry: s.Registry})
}

// HTTP outcomes, the values of the outcome label of chaos_http_requests_total.
var HTTPOutcomes = []string{"seen", "aborted", "delayed"}

// Observer returns a function that counts the http fault's events for experiment, with the
// counters resolved once (it runs per request). Events outside HTTPOutcomes are dropped.
func (s *Set) Observer(experiment string) func(string) {
	cs := make([]prometheus.Counter, len(HTTPOutcomes))
	for i, o := range HTTPOutcomes {
		cs[i] = s.HTTPRequests.WithLabelValues(experiment, o)
	}
	return func(event string) {
		for i, o := range HTTPOutcomes {
			if o == event {
				cs[i].Inc()
				return
			}
		}
	}
}

// Touch creates the label combinations for a fault type so dashboards see zeros, not gaps.
func (s *Set) Touch(failureType string) {
	for _, st := range []string{Success, Failed, Skipped} {
		s.Injections.WithLabelValues(failureType, st)
	}
	s.Active.WithLabelValues(failureType)
	s.PlannedEnd.WithLabelValues(failureType)
}

// Fleet registers the fleet-mode metrics (once; later calls do nothing).
func (s *Set) Fleet() {
	s.fleetOnce.Do(func() {
		for _, c := range []prometheus.Collector{s.FleetContact, s.FleetHalted, s.FleetMembers, s.FleetSlots, s.FleetRequests, s.FleetTakeDelay} {
			s.Registry.MustRegister(c)
		}
	})
}
